"""The base of every technique's config: strict, frozen, described, and the same object in every face."""

from typing import Any

import pydantic
import yaml

from edgeopt.components._shared.errors import ConfigError


class StrictConfig(pydantic.BaseModel):
    """A pydantic model that rejects unknown keys and cannot be mutated after validation.

    Construct with keyword arguments, `from_dict`, `from_json` or `from_yaml`; an invalid value raises
    `ConfigError` whose message names the field and the fix.
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, use_enum_values=False, validate_default=True)

    def __init__(self, **data: Any):
        try:
            super().__init__(**data)
        except pydantic.ValidationError as err:
            raise ConfigError(describe_validation_error(type(self).__name__, err)) from err

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None):
        return cls(**(data or {}))

    @classmethod
    def from_json(cls, text: str):
        try:
            return cls.model_validate_json(text)
        except pydantic.ValidationError as err:
            raise ConfigError(describe_validation_error(cls.__name__, err)) from err

    @classmethod
    def from_yaml(cls, path):
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a YAML mapping for {cls.__name__}, found {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from err

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def describe_validation_error(config_name: str, err: pydantic.ValidationError) -> str:
    """Turns pydantic's error list into one message: `Config.field: what is wrong (the fix)`."""
    lines = []
    for detail in err.errors():
        location = ".".join(str(part) for part in detail["loc"]) or "(config)"
        message = detail["msg"].removeprefix("Value error, ")
        if detail["type"] == "extra_forbidden":
            message = "unknown field; remove it or check its spelling against the documented fields"
        lines.append(f"{config_name}.{location}: {message}")
    return "; ".join(lines)

"""Generate the config tables in each technique's README from the schema, so docs cannot drift from code.

Run `python -m edgeopt.components.docs` (or `make docs`) after changing a config; a test fails while a README is
out of date.
"""

import enum
import sys
import typing
from pathlib import Path

import pydantic
from pydantic.fields import FieldInfo

START, END = "<!-- config-table:start -->", "<!-- config-table:end -->"
COMPONENTS = Path(__file__).resolve().parent

#: Config classes tabled in each folder's README: every registered technique's (registry.py), then the rest.
OTHER_README_CONFIGS = {
    "calibration": ["edgeopt.components.calibration.config.CalibrationConfig"],
    "evaluation": [
        "edgeopt.components.evaluation.config.EvaluationConfig",
        "edgeopt.components.evaluation.config.GateConfig",
        "edgeopt.components._shared.data_spec.DataSpec",
        "edgeopt.components._shared.data_spec.FeatureSpec",
    ],
    "recipes": ["edgeopt.components.recipes.config.RecipeConfig"],
    "tracking": ["edgeopt.components.tracking.config.TrackingConfig"],
    "search": ["edgeopt.components.search.config.SearchConfig"],
}


def _readme_configs() -> dict[str, list[str]]:
    from edgeopt.components.registry import TECHNIQUES

    configs = {
        technique.folder: [f"edgeopt.components.{path}" for path in (technique.config_class, *technique.doc_configs)]
        for technique in TECHNIQUES.values()
    }
    return configs | OTHER_README_CONFIGS


README_CONFIGS = _readme_configs()


def _load(dotted: str):
    import importlib

    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _type_name(annotation) -> str:
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f"`{member.value}`" for member in annotation)
    if isinstance(annotation, type):
        return annotation.__name__
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:  # constrained types (PositiveInt, ...): the description states the bound
        return _type_name(args[0])
    if origin is tuple:
        return "[" + ", ".join(_type_name(arg) for arg in args) + "]"
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(_type_name(arg) for arg in args) + (
            " or null" if len(args) < len(typing.get_args(annotation)) else ""
        )
    if origin is list:
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is typing.Annotated:
        return _type_name(args[0])
    return str(annotation).replace("typing.", "")


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, list):
        value = [item.value if isinstance(item, enum.Enum) else item for item in value]
    if isinstance(value, pydantic.BaseModel):
        return f"{type(value).__name__}()"
    return f"`{value!r}`".replace("|", "\\|")


def config_table(config_class) -> str:
    rows = [f"**{config_class.__name__}**: {config_class.__doc__.strip().splitlines()[0]}", "",
            "| field | type | default | description |", "|---|---|---|---|"]  # fmt: skip
    for name, field in config_class.model_fields.items():
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {description} |")
    return "\n".join(rows)


def render_section(folder: str) -> str:
    return "\n\n".join(config_table(_load(dotted)) for dotted in README_CONFIGS[folder])


def update_readme(folder: str, *, write: bool) -> bool:
    """Returns True when the README's table is current; rewrites it when `write`."""
    path = COMPONENTS / folder / "README.md"
    text = path.read_text()
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    updated = f"{before}{START}\n{render_section(folder)}\n{END}{after}"
    if write and updated != text:
        path.write_text(updated)
    return updated == text


#: JSON schemas published for editors and readers: report.json's contract, and recipe YAML files.
SCHEMAS = {
    "report.schema.json": "edgeopt.components._shared.report_model.Report",
    "recipe.schema.json": "edgeopt.components.recipes.config.RecipeConfig",
}
SCHEMA_FOLDER = COMPONENTS.parent / "configs" / "schemas"


def schema_text(dotted: str) -> str:
    import json

    return json.dumps(_load(dotted).model_json_schema(), indent=2, sort_keys=True) + "\n"


def update_schema(name: str, *, write: bool) -> bool:
    """Returns True when configs/schemas/NAME is current; rewrites it when `write`."""
    path = SCHEMA_FOLDER / name
    wanted = schema_text(SCHEMAS[name])
    current = path.read_text() if path.exists() else None
    if write and current != wanted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted)
    return current == wanted


def main() -> int:
    stale = [folder for folder in README_CONFIGS if not update_readme(folder, write=True)]
    for folder in stale:
        print(f"updated components/{folder}/README.md")
    for name in SCHEMAS:
        if not update_schema(name, write=True):
            print(f"updated configs/schemas/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

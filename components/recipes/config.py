"""RecipeConfig: an ordered chain of technique steps, each with its own config, ending in a TFLite conversion."""

from typing import Annotated, Literal, Union

import pydantic

from edgeopt.components._shared.config_base import StrictConfig
from edgeopt.components._shared.errors import ConfigError
from edgeopt.components.evaluation.config import GateConfig
from edgeopt.components.qat.config import QatScheme
from edgeopt.components.quantization.config import Granularity
from edgeopt.components.registry import CONVERSION_TECHNIQUES, TECHNIQUES


def _step_class(technique):
    """`{technique: NAME, config: NameConfig}` for one registry entry; the config defaults to its defaults."""
    config_class = technique.config()
    title = "".join(part.capitalize() for part in technique.name.split("_"))
    return pydantic.create_model(
        f"{title}Step",
        __base__=StrictConfig,
        __doc__=f"A {technique.summary} step.",
        technique=(Literal[technique.name], pydantic.Field(technique.name, description="The technique.")),
        config=(
            config_class,
            pydantic.Field(default_factory=config_class, description=f"{config_class.__name__} of the step."),
        ),
    )


#: One step class per registered technique (registry.py), joined into the union a recipe's steps validate against.
STEP_CLASSES = {name: _step_class(technique) for name, technique in TECHNIQUES.items()}
Step = Annotated[Union[tuple(STEP_CLASSES.values())], pydantic.Field(discriminator="technique")]  # noqa: UP007


class RecipeConfig(StrictConfig):
    """A named compression recipe: training-time steps (prune, cluster, qat, factorize, distill), then a conversion."""

    name: str = pydantic.Field(pattern=r"^[a-z0-9][a-z0-9_]*$", description="Identifier, e.g. prune80_int8.")
    description: str = pydantic.Field("", description="One line for reports and the MLflow UI.")
    steps: list[Step] = pydantic.Field(min_length=1, description="Steps in order; the last converts to TFLite.")
    gate: GateConfig = pydantic.Field(default_factory=GateConfig, description="What the candidate must achieve.")

    @pydantic.model_validator(mode="after")
    def _check_chain(self):
        techniques = [step.technique for step in self.steps]
        if techniques[-1] not in CONVERSION_TECHNIQUES:
            raise ValueError(f"the last step must be quantize or export, got {techniques}; add a conversion step")
        if any(t in CONVERSION_TECHNIQUES for t in techniques[:-1]):
            raise ValueError(f"quantize/export may only be the last step, got {techniques}")
        seen: list[str] = []
        for step in self.steps:
            if step.technique == "qat":
                if "qat" in seen:
                    raise ValueError("a recipe may hold one qat step")
                self._check_qat_preserves(step.config.scheme, seen)
            if step.technique == "cluster" and step.config.preserve_sparsity and "prune" not in seen:
                raise ValueError("cluster.preserve_sparsity needs an earlier prune step")
            seen.append(step.technique)
        if "qat" in seen and techniques[-1] != "quantize":
            raise ValueError("a qat step must be followed by quantize, which turns its fake-quant ranges into int8")
        if seen.index("qat") < len(seen) - 2 if "qat" in seen else False:
            raise ValueError("qat must come right before the final quantize step; prune and cluster go first")
        if "qat" in seen:
            self._check_no_granularity_after_qat(self.steps[-1].config)
        return self

    @staticmethod
    def _check_no_granularity_after_qat(quantize_config):
        # Measured on MobileNetV2: per-tensor switches leave a QAT model's .tflite byte for byte the same.
        chosen = [field for field in ("dense_granularity", "conv_granularity")
                  if getattr(quantize_config, field) != Granularity.PER_CHANNEL]  # fmt: skip
        if chosen:
            raise ValueError(
                f"{'/'.join(chosen)} has no effect after a qat step: the fake-quant ranges it trained fix the int8 "
                "scales (per channel for convolutions); remove it from the quantize step"
            )

    @staticmethod
    def _check_qat_preserves(scheme: QatScheme, seen: list[str]):
        needs = {
            QatScheme.PRUNE_PRESERVE: ["prune"],
            QatScheme.CLUSTER_PRESERVE: ["cluster"],
            QatScheme.SPARSE_CLUSTER_PRESERVE: ["prune", "cluster"],
        }.get(scheme, [])
        missing = [technique for technique in needs if technique not in seen]
        if missing:
            raise ValueError(
                f"qat scheme {scheme.value} preserves {needs} but the recipe has no earlier {missing} step"
            )

    @classmethod
    def builtin(cls, name: str) -> "RecipeConfig":
        """A recipe shipped in configs/recipes/, e.g. `RecipeConfig.builtin("prune80_int8")`."""
        from importlib import resources

        path = resources.files("edgeopt.configs") / "recipes" / f"{name}.yaml"
        if not path.is_file():
            raise ConfigError(f"no built-in recipe '{name}'; `edgeopt recipes` lists them")
        return cls.from_yaml(path)

    @property
    def technique_chain(self) -> str:
        return "+".join(step.technique for step in self.steps)

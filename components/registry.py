"""Technique registry: one line per technique, from which the recipe runner, the recipe schema (its `Step` union),
the docs tables and the KFP component list derive. Adding a technique means one folder (config, core, faces,
README) and one line here. Everything is imported lazily so the CLI starts fast."""

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Technique:
    """A technique as recipes, docs and faces see it.

    Dotted paths are relative to `edgeopt.components`; the folder is the first part of `config_class`.
    """

    name: str  # the `technique:` of a recipe step
    config_class: str  # e.g. "pruning.config.PruningConfig"
    core_function: str  # path in, path out: (model_path, config, output_dir, *, data, ...) -> result
    summary: str
    produces_tflite: bool = False  # a conversion step: ends a recipe
    fine_tunes: bool = False  # trains on the training split
    uses_calibration: bool = False  # takes `calibration_inputs` (the representative dataset)
    kfp_component: str | None = None  # e.g. "pruning.kfp_component.prune"
    doc_configs: tuple[str, ...] = ()  # more config classes tabled in the folder's README

    @staticmethod
    def _load(dotted: str):
        module, _, attribute = dotted.rpartition(".")
        return getattr(importlib.import_module(f"edgeopt.components.{module}"), attribute)

    @property
    def folder(self) -> str:
        return self.config_class.split(".", 1)[0]

    def config(self):
        return self._load(self.config_class)

    def function(self):
        return self._load(self.core_function)

    def kfp(self):
        return self._load(self.kfp_component) if self.kfp_component else None

    def step_kwargs(self, *, calibration_inputs) -> dict:
        """The technique-specific keyword arguments the recipe runner passes to the core function."""
        return {"calibration_inputs": calibration_inputs} if self.uses_calibration else {}


TECHNIQUES = {
    technique.name: technique
    for technique in (
        Technique("prune", "pruning.config.PruningConfig", "pruning.core.prune", "magnitude pruning, incl. 2:4",
                  fine_tunes=True, kfp_component="pruning.kfp_component.prune"),
        Technique("cluster", "clustering.config.ClusteringConfig", "clustering.core.cluster_weights",
                  "weight clustering", fine_tunes=True, kfp_component="clustering.kfp_component.cluster_weights"),
        Technique("qat", "qat.config.QatConfig", "qat.core.quantization_aware_train", "quantization-aware training",
                  fine_tunes=True, kfp_component="qat.kfp_component.quantization_aware_train"),
        Technique("factorize", "factorization.config.FactorizationConfig", "factorization.core.factorize",
                  "low-rank (SVD) factorization", fine_tunes=True,
                  kfp_component="factorization.kfp_component.factorize"),
        Technique("distill", "distillation.config.DistillationConfig", "distillation.core.distill",
                  "knowledge distillation into a smaller student", fine_tunes=True,
                  kfp_component="distillation.kfp_component.distill"),
        Technique("quantize", "quantization.config.QuantizationConfig", "quantization.core.quantize",
                  "post-training quantization", produces_tflite=True, uses_calibration=True,
                  kfp_component="quantization.kfp_component.quantize"),
        Technique("export", "export.config.ExportConfig", "export.core.export_tflite", "float32 TFLite export",
                  produces_tflite=True, kfp_component="export.kfp_component.export_tflite",
                  doc_configs=("export.config.ValidationConfig",)),
    )
}  # fmt: skip

TRAINING_TECHNIQUES = tuple(name for name, technique in TECHNIQUES.items() if not technique.produces_tflite)
CONVERSION_TECHNIQUES = tuple(name for name, technique in TECHNIQUES.items() if technique.produces_tflite)

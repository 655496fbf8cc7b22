"""Technique registry: name -> config class and core function, imported lazily so the CLI starts fast."""

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Technique:
    name: str
    config_class: str
    core_function: str
    produces_tflite: bool
    summary: str

    def _load(self, dotted: str):
        module, _, attribute = dotted.rpartition(".")
        return getattr(importlib.import_module(f"edgeopt.components.{module}"), attribute)

    def config(self):
        return self._load(self.config_class)

    def function(self):
        return self._load(self.core_function)


TECHNIQUES = {
    technique.name: technique
    for technique in (
        Technique("prune", "pruning.config.PruningConfig", "pruning.core.prune", False, "magnitude pruning, incl. 2:4"),
        Technique(
            "cluster",
            "clustering.config.ClusteringConfig",
            "clustering.core.cluster_weights",
            False,
            "weight clustering",
        ),
        Technique(
            "qat", "qat.config.QatConfig", "qat.core.quantization_aware_train", False, "quantization-aware training"
        ),
        Technique(
            "factorize",
            "factorization.config.FactorizationConfig",
            "factorization.core.factorize",
            False,
            "low-rank (SVD) factorization",
        ),
        Technique(
            "distill",
            "distillation.config.DistillationConfig",
            "distillation.core.distill",
            False,
            "knowledge distillation into a smaller student",
        ),
        Technique(
            "quantize",
            "quantization.config.QuantizationConfig",
            "quantization.core.quantize",
            True,
            "post-training quantization",
        ),
        Technique("export", "export.config.ExportConfig", "export.core.export_tflite", True, "float32 TFLite export"),
    )
}

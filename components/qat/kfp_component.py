"""KFP face of QAT: `quantization_aware_train` (Model + Dataset -> quantization-aware trained Keras Model)."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from edgeopt.components._shared.kfp_component import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def quantization_aware_train(
    model: Input[Model],
    examples: Input[Dataset],
    qat_model: Output[Model],
    metrics: Output[Metrics],
    config: Optional[dict] = None,
    data_spec: Optional[dict] = None,
    module_file: str = "",
):
    """Fine-tunes with fake quantization; follow with `quantize` (config: QatConfig, components/qat/README.md)."""
    from edgeopt.components._shared.kfp_runtime import artifact_metadata, training_data
    from edgeopt.components.qat.config import QatConfig
    from edgeopt.components.qat.core import quantization_aware_train as run_qat

    settings = QatConfig.from_dict(config)
    data = training_data(examples.path, data_spec, module_file)
    result = run_qat(model.path, settings, qat_model.path, data=data)
    qat_model.metadata.update(artifact_metadata(settings, result.to_dict()))
    metrics.log_metric("train_accuracy", result.train_accuracy)

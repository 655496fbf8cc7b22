"""TFX faces: constructors reject bad configs before anything runs; executors on artifacts in temporary folders."""

import json
import os

import pytest
from tfx import types
from tfx.types import standard_artifacts

from edgeopt.components._shared import tfx_component as face
from edgeopt.components._shared.errors import ConfigError
from edgeopt.components.calibration.tfx_component import CalibrationSampler, CalibrationSamplerExecutor
from edgeopt.components.clustering.tfx_component import WeightClustererExecutor
from edgeopt.components.evaluation.tfx_component import CompressionEvaluator, CompressionEvaluatorExecutor
from edgeopt.components.export.tfx_component import TFLiteExporterExecutor
from edgeopt.components.pruning.tfx_component import Pruner, PrunerExecutor
from edgeopt.components.qat.tfx_component import QuantizationAwareTrainerExecutor
from edgeopt.components.quantization.tfx_component import Quantizer, QuantizerExecutor
from edgeopt.components.recipes.tfx_component import ModelOptimizer
from tests.helpers import kernels, overall_sparsity

DATA_SPEC = "configs/data/digits.yaml"


def channel(artifact_type):
    return types.Channel(type=artifact_type)


def artifact(artifact_type, uri):
    instance = artifact_type()
    instance.uri = str(uri)
    os.makedirs(instance.uri, exist_ok=True)
    return instance


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: Pruner(channel(standard_artifacts.Model), channel(standard_artifacts.Examples),
                           {"target_sparsity": 2}, data_spec=DATA_SPEC),
            r"PruningConfig\.target_sparsity",
        ),
        (
            lambda: Quantizer(channel(standard_artifacts.Model), channel(standard_artifacts.Examples), {"mode": "int4"},
                              data_spec=DATA_SPEC),
            r"QuantizationConfig\.mode",
        ),
        (
            lambda: Pruner(channel(standard_artifacts.Model), channel(standard_artifacts.Examples), {}),
            "exactly one of data_spec",
        ),
        (
            lambda: Pruner(channel(standard_artifacts.Model), channel(standard_artifacts.Examples), {},
                           module_file="no/such/module.py"),
            "does not exist",
        ),
        (
            lambda: ModelOptimizer(channel(standard_artifacts.Model), channel(standard_artifacts.Examples),
                                   {"name": "x", "steps": [{"technique": "prune"}]}, data_spec=DATA_SPEC),
            "the last step must be quantize or export",
        ),
        (
            lambda: CompressionEvaluator(channel(standard_artifacts.Model), channel(standard_artifacts.Model),
                                         channel(standard_artifacts.Examples), gate={"max_accuracy_drop": -1},
                                         data_spec=DATA_SPEC),
            r"GateConfig\.max_accuracy_drop",
        ),
        (lambda: CalibrationSampler(channel(standard_artifacts.Examples), {"size": 0}), r"CalibrationConfig\.size"),
    ],
    ids=["prune-range", "quantize-mode", "no-data-source", "missing-module", "recipe-chain", "gate", "sampler"],
)  # fmt: skip
def test_constructor_rejects_bad_config_before_the_pipeline_runs(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_component_version_is_an_exec_property():
    from edgeopt.components import __version__

    pruner = Pruner(channel(standard_artifacts.Model), channel(standard_artifacts.Examples), {}, data_spec=DATA_SPEC)
    assert pruner.exec_properties[face.COMPONENT_VERSION_KEY] == __version__
    assert json.loads(pruner.exec_properties[face.CONFIG_KEY])["target_sparsity"] == 0.8


def _spec_properties():
    return face.data_source_properties(data_spec=DATA_SPEC) | {face.COMPONENT_VERSION_KEY: "test"}


@pytest.mark.slow
def test_executors_chain_sample_prune_quantize_export_evaluate(tiny_model, digits_examples, tmp_path):
    examples = artifact(standard_artifacts.Examples, digits_examples)
    model = artifact(standard_artifacts.Model, tiny_model)

    calibration = artifact(face.CalibrationData, tmp_path / "calibration")
    CalibrationSamplerExecutor().Do(
        {face.EXAMPLES_KEY: [examples]},
        {face.CALIBRATION_KEY: [calibration]},
        {face.CONFIG_KEY: json.dumps({"size": 64, "label_key": "label"}), face.COMPONENT_VERSION_KEY: "test"},
    )
    assert calibration.get_int_custom_property("count") == 64
    assert os.path.exists(os.path.join(calibration.uri, "data.tfrecord.gz"))

    pruned = artifact(standard_artifacts.Model, tmp_path / "pruned")
    PrunerExecutor().Do(
        {face.MODEL_KEY: [model], face.EXAMPLES_KEY: [examples]},
        {face.OUTPUT_MODEL_KEY: [pruned]},
        {face.CONFIG_KEY: json.dumps({"target_sparsity": 0.5, "epochs": 2}), **_spec_properties()},
    )
    assert os.path.exists(os.path.join(pruned.uri, "Format-Serving", "saved_model.pb"))
    assert pruned.get_float_custom_property("achieved_sparsity") >= 0.48
    assert pruned.get_string_custom_property(face.MODEL_FORMAT_PROPERTY) == face.KERAS_FORMAT

    quantized = artifact(standard_artifacts.Model, tmp_path / "quantized")
    QuantizerExecutor().Do(
        {face.MODEL_KEY: [pruned], face.EXAMPLES_KEY: [examples], face.CALIBRATION_KEY: [calibration]},
        {face.OUTPUT_MODEL_KEY: [quantized]},
        {face.CONFIG_KEY: json.dumps({"mode": "full_integer"}), **_spec_properties()},
    )
    int8 = kernels(face.tflite_path(quantized), "INT8")
    assert overall_sparsity(int8) >= 0.48

    baseline = artifact(standard_artifacts.Model, tmp_path / "baseline")
    TFLiteExporterExecutor().Do(
        {face.MODEL_KEY: [model], face.EXAMPLES_KEY: [examples]},
        {face.OUTPUT_MODEL_KEY: [baseline]},
        {face.CONFIG_KEY: "{}", **_spec_properties()},
    )

    for gate, blessed in (({"max_accuracy_drop": 5.0}, 1), ({"min_size_ratio": 100.0}, 0)):
        blessing = artifact(standard_artifacts.ModelBlessing, tmp_path / f"blessing{blessed}")
        evaluation = artifact(standard_artifacts.ModelEvaluation, tmp_path / f"evaluation{blessed}")
        CompressionEvaluatorExecutor().Do(
            {face.MODEL_KEY: [quantized], face.BASELINE_MODEL_KEY: [baseline], face.EXAMPLES_KEY: [examples]},
            {face.BLESSING_KEY: [blessing], face.EVALUATION_KEY: [evaluation]},
            {"gate": json.dumps(gate), "evaluation_config": json.dumps({"timed_runs": 5}), **_spec_properties()},
        )
        assert blessing.get_int_custom_property("blessed") == blessed
        assert os.path.exists(os.path.join(blessing.uri, "BLESSED" if blessed else "NOT_BLESSED"))
        metrics = json.loads(open(os.path.join(evaluation.uri, "metrics.json")).read())
        assert metrics["size_ratio"] == pytest.approx(evaluation.get_float_custom_property("size_ratio"))
        assert metrics["size_ratio"] > 2.0  # the 10 k-parameter model carries a fixed overhead


@pytest.mark.parametrize(
    ("executor_class", "config", "property_name"),
    [
        (WeightClustererExecutor, {"number_of_clusters": 8, "epochs": 1}, "max_unique_values"),
        (QuantizationAwareTrainerExecutor, {"epochs": 1}, "train_accuracy"),
    ],
    ids=["cluster", "qat"],
)
def test_training_step_executors_write_a_keras_model(
    executor_class, config, property_name, tiny_model, digits_examples, tmp_path
):
    output = artifact(standard_artifacts.Model, tmp_path / "out")
    executor_class().Do(
        {
            face.MODEL_KEY: [artifact(standard_artifacts.Model, tiny_model)],
            face.EXAMPLES_KEY: [artifact(standard_artifacts.Examples, digits_examples)],
        },
        {face.OUTPUT_MODEL_KEY: [output]},
        {face.CONFIG_KEY: json.dumps(config), **_spec_properties()},
    )
    assert os.path.exists(os.path.join(output.uri, "Format-Serving", "saved_model.pb"))
    assert output.has_custom_property(property_name)
    assert json.loads(output.get_string_custom_property("edgeopt_config")) == json.loads(
        executor_class.CONFIG_CLASS.from_dict(config).to_json()
    )


@pytest.mark.slow
def test_executors_sample_optimize_export_evaluate_report_on_remote_uris(tiny_model, digits_examples, tmp_path):
    """On Vertex AI artifact URIs are gs://...; TF's offline ram:// filesystem stands in for it here."""
    from mlflow import MlflowClient

    from edgeopt.components._shared.keras_bootstrap import tf
    from edgeopt.components._shared.remote_files import copy_tree
    from edgeopt.components.recipes.config import RecipeConfig
    from edgeopt.components.recipes.tfx_component import ModelOptimizerExecutor
    from edgeopt.components.tracking.tfx_component import MlflowReporterExecutor

    gfile, root = tf.io.gfile, f"ram://tfx-{os.getpid()}-{tmp_path.name}"

    def remote(artifact_type, name):
        instance = artifact_type()
        instance.uri = f"{root}/{name}"
        gfile.makedirs(instance.uri)
        return instance

    copy_tree(str(digits_examples), f"{root}/examples")
    copy_tree(str(tiny_model), f"{root}/model")
    examples, model = remote(standard_artifacts.Examples, "examples"), remote(standard_artifacts.Model, "model")
    calibration = remote(face.CalibrationData, "calibration")
    CalibrationSamplerExecutor().Do(
        {face.EXAMPLES_KEY: [examples]},
        {face.CALIBRATION_KEY: [calibration]},
        {face.CONFIG_KEY: json.dumps({"size": 64, "label_key": "label"}), face.COMPONENT_VERSION_KEY: "test"},
    )
    assert calibration.uri == f"{root}/calibration" and gfile.exists(f"{root}/calibration/data.tfrecord.gz")
    optimized, baseline = remote(standard_artifacts.Model, "optimized"), remote(standard_artifacts.Model, "baseline")
    ModelOptimizerExecutor().Do(
        {face.MODEL_KEY: [model], face.EXAMPLES_KEY: [examples], face.CALIBRATION_KEY: [calibration]},
        {face.OUTPUT_MODEL_KEY: [optimized]},
        {face.CONFIG_KEY: RecipeConfig.builtin("ptq_int8").to_json(), **_spec_properties()},
    )
    TFLiteExporterExecutor().Do(
        {face.MODEL_KEY: [model], face.EXAMPLES_KEY: [examples]},
        {face.OUTPUT_MODEL_KEY: [baseline]},
        {face.CONFIG_KEY: "{}", **_spec_properties()},
    )
    assert gfile.exists(face.tflite_path(optimized)) and gfile.exists(face.tflite_path(baseline))
    blessing = remote(standard_artifacts.ModelBlessing, "blessing")
    evaluation = remote(standard_artifacts.ModelEvaluation, "evaluation")
    CompressionEvaluatorExecutor().Do(
        {face.MODEL_KEY: [optimized], face.BASELINE_MODEL_KEY: [baseline], face.EXAMPLES_KEY: [examples]},
        {face.BLESSING_KEY: [blessing], face.EVALUATION_KEY: [evaluation]},
        {"gate": json.dumps({"max_accuracy_drop": 5.0}), "evaluation_config": json.dumps({"timed_runs": 5}),
         **_spec_properties()},
    )  # fmt: skip
    with gfile.GFile(f"{root}/evaluation/metrics.json") as handle:
        record = json.loads(handle.read())
    assert record["tflite_path"] == face.tflite_path(optimized) and record["gate"]["passed"]
    assert gfile.exists(f"{root}/blessing/BLESSED")
    assert blessing.get_string_custom_property("current_model") == f"{root}/optimized"

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = json.dumps({"tracking_uri": uri, "registered_model_name": "remote"})
    MlflowReporterExecutor().Do(
        {"evaluations": [evaluation], face.MODEL_KEY: [model], face.EXAMPLES_KEY: [examples]},
        {},
        {face.TRACKING_KEY: tracking, face.COMPONENT_VERSION_KEY: "test"},
    )
    version = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias("remote", "challenger")
    assert version.tags["edgeopt.recipe"] == "ptq_int8"
    assert list(tmp_path.rglob("MLmodel")), "the challenger's MLflow model (with the .tflite) was not logged"
    gfile.rmtree(root)

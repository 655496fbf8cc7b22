"""Per-layer sensitivity and selective quantization on the tiny CNN with one layer made sensitive on purpose."""

import json

import numpy as np
import pytest

from edgeopt.components._shared.errors import ConfigError
from edgeopt.components._shared.keras_bootstrap import keras
from edgeopt.components._shared.model_io import load_keras_model, save_keras_model
from edgeopt.components.demo.outliers import add_activation_outlier
from edgeopt.components.quantization.config import QuantizationConfig
from edgeopt.components.quantization.core import configure_converter, pick_calibration_examples, quantize
from edgeopt.components.quantization.sensitivity import SENSITIVITY_JSON, SENSITIVITY_PNG, layer_of_tensor, rank_layers
from tests.helpers import activation_types, whole_split

PER_TENSOR_INT8 = {"mode": "full_integer", "dense_granularity": "per_tensor"}
LENIENT = {"validation": {"min_top1_agreement": 0.0}}


@pytest.fixture(scope="module")
def sensitive_model(tiny_model, digits_data, tmp_path_factory):
    """The tiny CNN with one huge dense1 weight on an input that is always zero (conv2's first channel is silenced:
    zero kernel, negative bias, ReLU): the output range stays the same, but a per-tensor int8 scale sized for the
    huge weight rounds every other dense1 weight to zero."""
    model = load_keras_model(tiny_model)
    conv_kernel, conv_bias = model.get_layer("conv2").get_weights()
    conv_kernel[..., 0], conv_bias[0] = 0.0, -1.0
    model.get_layer("conv2").set_weights([conv_kernel, conv_bias])
    inputs, _ = whole_split(digits_data, digits_data.train_split)
    flat = keras.Model(model.inputs, model.get_layer("flatten").output)(inputs).numpy()
    quiet_input = int(np.abs(flat).max(axis=0).argmin())
    assert np.abs(flat[:, quiet_input]).max() == 0.0
    kernel, bias = model.get_layer("dense1").get_weights()
    kernel[quiet_input, :] = 500 * np.abs(kernel).max()
    model.get_layer("dense1").set_weights([kernel, bias])
    return save_keras_model(model, tmp_path_factory.mktemp("sensitive") / "model")


def test_layer_of_tensor_reads_the_keras_layer_from_fused_names():
    layers = ["conv1", "conv2", "dense1", "logits"]
    assert (
        layer_of_tensor("digits_cnn_1/dense1/MatMul;digits_cnn_1/dense1/Relu;digits_cnn_1/dense1/BiasAdd", layers)
        == "dense1"
    )
    assert layer_of_tensor("serving_default_pixels:0", layers) is None


def test_the_layer_with_a_huge_weight_ranks_first(sensitive_model, digits_data):
    model = load_keras_model(sensitive_model)
    config = QuantizationConfig(**PER_TENSOR_INT8)
    inputs = pick_calibration_examples(digits_data, 100, 0)
    ranking = rank_layers(model, lambda converter: configure_converter(converter, config, inputs), inputs)
    assert ranking[0]["layer"] == "dense1"
    # The last layer's op output is named after the signature; its weights still tie it to `logits`.
    assert {"conv1", "conv2", "dense1", "logits"} <= {entry["layer"] for entry in ranking}
    others = [entry["rmse_over_scale"] for entry in ranking[1:]]
    assert ranking[0]["rmse_over_scale"] > 3 * max(others)


def test_keeping_the_top_layer_float_lowers_the_error(sensitive_model, digits_data, tmp_path, unchanged):
    unchanged(sensitive_model)
    plain = quantize(
        sensitive_model, QuantizationConfig(**PER_TENSOR_INT8, **LENIENT), tmp_path / "int8", data=digits_data
    )
    selective = quantize(
        sensitive_model,
        QuantizationConfig(**PER_TENSOR_INT8, **LENIENT, float_top_k=1),
        tmp_path / "selective",
        data=digits_data,
    )
    assert selective.mean_abs_diff < plain.mean_abs_diff / 3
    assert selective.top1_agreement > 0.95 > 0.7 > plain.top1_agreement
    # dense1 (the bulk of the weights) stays float32, so the file grows, but the rest is still int8.
    assert plain.tflite_bytes < selective.tflite_bytes
    sensitivity = json.loads((tmp_path / "selective" / SENSITIVITY_JSON).read_text())
    assert sensitivity["float_layers"] == ["dense1"]
    assert sensitivity["layers"][0]["layer"] == "dense1"
    assert (tmp_path / "selective" / SENSITIVITY_PNG).read_bytes()[:4] == b"\x89PNG"


def test_float_layers_by_name_and_the_mode_rule(sensitive_model, digits_data, tmp_path):
    with pytest.raises(ConfigError, match="full_integer only|not dynamic_range"):
        QuantizationConfig(mode="dynamic_range", float_top_k=1)
    with pytest.raises(ConfigError, match=r"\['no_such_layer'\] name no quantized layer.*'dense1'"):
        quantize(
            sensitive_model,
            QuantizationConfig(**PER_TENSOR_INT8, float_layers=["no_such_layer"]),
            tmp_path,
            data=digits_data,
        )


@pytest.mark.slow
def test_sensitivity_artifacts_are_logged_on_the_candidate_run(sensitive_model, digits_data, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from edgeopt.components.evaluation.config import EvaluationConfig
    from edgeopt.components.recipes.config import RecipeConfig
    from edgeopt.components.recipes.core import optimize
    from edgeopt.components.tracking.config import TrackingConfig
    from edgeopt.components.tracking.mlflow_tracking import tracked_job

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    recipe = RecipeConfig(
        name="selective", steps=[{"technique": "quantize", "config": {**PER_TENSOR_INT8, **LENIENT, "float_top_k": 1}}]
    )
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with tracked_job(TrackingConfig(tracking_uri=store), orchestrator="cli", output_dir=tmp_path, verbose=0) as job:
        report = optimize(
            sensitive_model, [recipe], tmp_path, data=digits_data, evaluation=EvaluationConfig(timed_runs=3)
        )
        job.log_report(report)
    client = MlflowClient(store)
    (child,) = [
        run
        for run in client.search_runs([client.get_experiment_by_name("edgeopt").experiment_id])
        if "mlflow.parentRunId" in run.data.tags
    ]
    logged = {item.path for item in client.list_artifacts(child.info.run_id, "sensitivity")}
    assert logged == {"sensitivity/layer_sensitivity.json", "sensitivity/layer_sensitivity.png"}


@pytest.fixture(scope="module")
def outlier_model(tiny_model, tmp_path_factory):
    """The tiny CNN with one dense1 unit always at ~5000 (a huge bias) whose logits weights are zero: the float
    outputs ignore it, but an int8 scale sized for it rounds every other dense1 activation to a few steps."""
    model = load_keras_model(tiny_model)
    add_activation_outlier(model)
    return save_keras_model(model, tmp_path_factory.mktemp("outlier") / "model")


def test_int16x8_layers_keep_the_outlier_path_in_int16(outlier_model, digits_data, tmp_path, unchanged):
    unchanged(outlier_model)
    aeq_int8 = {"mode": "aeq_static_int8", "calibration_examples": 64, **LENIENT}
    plain = quantize(outlier_model, QuantizationConfig(**aeq_int8), tmp_path / "int8", data=digits_data)
    mixed = quantize(
        outlier_model, QuantizationConfig(**aeq_int8, int16x8_layers=["logits"]), tmp_path / "mixed", data=digits_data
    )
    assert plain.top1_agreement < 0.6 < 0.95 <= mixed.top1_agreement
    types = activation_types(mixed.tflite_path)
    # logits (the model's output, named after the signature) and dense1, which feeds it, run with int16 activations;
    # the conv layers stay int8, and a QUANTIZE op turns flatten's int8 output into dense1's int16 input.
    assert types["StatefulPartitionedCall:0"] == "INT16"
    assert types["digits_cnn/dense1/MatMul;digits_cnn/dense1/Relu;digits_cnn/dense1/BiasAdd"] == "INT16"
    assert types["digits_cnn/flatten/Reshape"] == "INT8" and types["digits_cnn/pool/MaxPool"] == "INT8"
    assert {name: kind for name, kind in types.items() if "conv" in name and kind != "INT8"} == {}
    assert mixed.tflite_bytes < 1.1 * plain.tflite_bytes  # int8 weights everywhere: 16x8 costs activations, not bytes
    sensitivity = json.loads((tmp_path / "mixed" / SENSITIVITY_JSON).read_text())
    assert sensitivity["int16x8_layers"] == ["logits"] and sensitivity["float_layers"] == []


def test_int16x8_top_k_takes_the_most_sensitive_layer(outlier_model, digits_data, tmp_path):
    config = QuantizationConfig(mode="aeq_static_int8", calibration_examples=64, int16x8_top_k=1)
    result = quantize(outlier_model, config, tmp_path, data=digits_data)
    sensitivity = json.loads((tmp_path / SENSITIVITY_JSON).read_text())
    # Ranked by what 16x8 buys: logits (with dense1 feeding it in int16) takes the error away; the rest cannot.
    best, *rest = sensitivity["int16x8_gains"]
    assert sensitivity["int16x8_layers"] == [best["layer"]] == ["logits"]
    assert best["output_error"] < best["all_int8_output_error"] / 3
    assert {entry["layer"] for entry in rest} >= {"conv1", "conv2", "dense1"} and all(
        entry["gain"] < best["gain"] / 3 for entry in rest
    )
    assert result.top1_agreement >= 0.95
    assert activation_types(result.tflite_path)["StatefulPartitionedCall:0"] == "INT16"


def test_int16x8_layers_need_the_ai_edge_quantizer_mode_and_known_names(outlier_model, digits_data, tmp_path):
    with pytest.raises(ConfigError, match="not full_integer.*set mode: aeq_static_int8"):
        QuantizationConfig(mode="full_integer", int16x8_layers=["dense1"])
    with pytest.raises(ConfigError, match=r"int16x8_layers \['no_such_layer'\] name no quantized layer.*'dense1'"):
        quantize(
            outlier_model,
            QuantizationConfig(mode="aeq_static_int8", int16x8_layers=["no_such_layer"]),
            tmp_path / "out",
            data=digits_data,
        )
    assert not (tmp_path / "out").exists()

"""int4 weights through AI Edge Quantizer: smaller than int8, checked against Keras, mixed int4/int8 by layer."""

import pytest

from edgeopt.components._shared.errors import ConfigError
from edgeopt.components.quantization.config import QuantizationConfig
from edgeopt.components.quantization.core import quantize
from edgeopt.components.recipes.config import RecipeConfig


def kernel_types(tflite_path) -> dict[str, str]:
    """Stored type of each rank >= 2 constant tensor (INT4 included, which tflite_inspect skips)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    names = {value: name for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
    model = flatbuffer_utils.read_model(str(tflite_path))
    return {
        tensor.name.decode(): names[tensor.type]
        for tensor in model.subgraphs[0].tensors
        if len(tensor.shape) >= 2 and model.buffers[tensor.buffer].data is not None
    }


@pytest.fixture(scope="module")
def int8(tiny_model, digits_data, tmp_path_factory):
    config = RecipeConfig.builtin("ptq_int8").steps[0].config
    return quantize(tiny_model, config, tmp_path_factory.mktemp("int8"), data=digits_data)


def test_int4_recipe_is_smaller_than_ptq_int8_and_agrees_with_keras(tiny_model, digits_data, int8, tmp_path, unchanged):
    unchanged(tiny_model)
    config = RecipeConfig.builtin("ptq_int4").steps[0].config
    result = quantize(tiny_model, config, tmp_path, data=digits_data)
    assert result.tflite_bytes < 0.75 * int8.tflite_bytes
    assert result.top1_agreement >= 0.95  # convert_and_validate ran both models on 128 eval examples
    types = kernel_types(result.tflite_path)
    assert {"conv2", "dense1", "logits"} <= {name.split("/")[1] for name, kind in types.items() if kind == "INT4"}


def test_mixed_int4_int8_keeps_the_named_layer_int8(tiny_model, digits_data, tmp_path):
    config = QuantizationConfig(mode="int4_dynamic", int8_layers=["dense1"])
    result = quantize(tiny_model, config, tmp_path, data=digits_data)
    types = {name.split("/")[1]: kind for name, kind in kernel_types(result.tflite_path).items() if "/" in name}
    assert types["dense1"] == "INT8" and types["conv2"] == "INT4"


def test_int4_config_rules_and_unmatched_layers(tiny_model, digits_data, tmp_path):
    with pytest.raises(ConfigError, match="int4_weight_only is channelwise only"):
        QuantizationConfig(mode="int4_weight_only", int4_granularity="blockwise_32")
    with pytest.raises(ConfigError, match="not full_integer"):
        QuantizationConfig(mode="full_integer", int8_layers=["dense1"])
    with pytest.raises(ConfigError, match=r"int8_layers \['logits'\] match no op"):
        quantize(
            tiny_model, QuantizationConfig(mode="int4_weight_only", int8_layers=["logits"]), tmp_path, data=digits_data
        )
    assert not tmp_path.joinpath("model.tflite").exists()


@pytest.mark.parametrize(("mode", "activation"), [("aeq_static_int8", "int8"), ("aeq_static_int16x8", "int16")])
def test_ai_edge_quantizer_static_modes_calibrate_and_agree_with_keras(
    tiny_model, digits_data, tmp_path, mode, activation
):
    import numpy as np

    from edgeopt.components._shared.tflite_runtime import TfliteRunner

    result = quantize(tiny_model, QuantizationConfig(mode=mode, calibration_examples=64), tmp_path, data=digits_data)
    assert result.top1_agreement >= 0.95
    assert TfliteRunner(result.tflite_path).input_dtype == np.dtype(activation)
    assert {"conv2", "dense1"} <= {name.split("/")[1] for name, kind in kernel_types(result.tflite_path).items()
                                   if kind == "INT8" and "/" in name}  # fmt: skip

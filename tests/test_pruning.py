"""Pruning: the zeros reach the .tflite, 2:4 holds in every group of four, and the schedule always fires."""

import numpy as np
import pytest

from edgeopt.components._shared.errors import ConfigError, OptimizationNotAchievedError
from edgeopt.components._shared.keras_bootstrap import keras
from edgeopt.components._shared.model_io import load_keras_model
from edgeopt.components.export.config import ExportConfig
from edgeopt.components.export.core import export_tflite
from edgeopt.components.pruning.config import PruningConfig
from edgeopt.components.pruning.core import plan_schedule, prune
from edgeopt.components.quantization.config import QuantizationConfig
from edgeopt.components.quantization.core import quantize
from tests.helpers import keras_accuracy, kernels, overall_sparsity


@pytest.mark.parametrize("schedule", ["polynomial_decay", "constant"])
def test_pruned_tflite_holds_the_target_sparsity(schedule, tiny_model, digits_data, tmp_path, unchanged):
    unchanged(tiny_model)
    config = PruningConfig(target_sparsity=0.8, schedule=schedule, epochs=8, learning_rate=1e-3)
    result = prune(tiny_model, config, tmp_path / "pruned", data=digits_data)
    assert result.achieved_sparsity >= 0.78
    assert result.schedule.end_step % result.schedule.frequency == 0

    exported = export_tflite(tmp_path / "pruned", ExportConfig(), tmp_path / "tflite", data=digits_data)
    assert overall_sparsity(kernels(exported.tflite_path, "FLOAT32")) >= 0.78
    int8 = quantize(tmp_path / "pruned", QuantizationConfig(), tmp_path / "int8", data=digits_data)
    assert overall_sparsity(kernels(int8.tflite_path, "INT8")) >= 0.78

    float_accuracy = keras_accuracy(load_keras_model(tiny_model), digits_data)
    assert keras_accuracy(load_keras_model(tmp_path / "pruned"), digits_data) >= float_accuracy - 0.05


def test_two_of_four_holds_in_every_group(tiny_model, digits_data, tmp_path):
    config = PruningConfig(structure="2:4", epochs=2, learning_rate=1e-3)
    prune(tiny_model, config, tmp_path / "pruned", data=digits_data)
    int8 = quantize(tmp_path / "pruned", QuantizationConfig(), tmp_path / "int8", data=digits_data)
    checked = 0
    for tensor in kernels(int8.tflite_path, "INT8"):
        # TFLite stores kernels input-channel last ([out, in] and [out, h, w, in]); groups run along that axis.
        rows = tensor.values.reshape(-1, tensor.shape[-1])
        if rows.shape[1] % 4:
            continue
        groups = rows.reshape(rows.shape[0], -1, 4)
        assert np.count_nonzero(groups, axis=-1).max() <= 2, tensor.name
        checked += groups.shape[0] * groups.shape[1]
    assert checked > 1000


@pytest.mark.parametrize("steps_per_epoch", [1, 2, 7, 23, 45, 100, 1000])
@pytest.mark.parametrize("epochs", [1, 2, 4])
def test_schedule_fits_the_real_number_of_steps(steps_per_epoch, epochs):
    # The tfmot tutorial's schedule on 1,440 images (end_step 22, frequency 100) never updates a mask.
    plan = plan_schedule(PruningConfig(epochs=epochs), steps_per_epoch)
    assert 1 <= plan.frequency <= max(1, plan.end_step)
    assert plan.end_step % plan.frequency == 0
    assert plan.end_step <= max(1, plan.total_steps - 1)


def test_model_without_prunable_layers_is_refused(digits_data, tmp_path):
    model = keras.Sequential([keras.layers.Input(shape=(8, 8, 1)), keras.layers.GlobalAveragePooling2D()])
    model.save(tmp_path / "pool_only")
    with pytest.raises(OptimizationNotAchievedError, match="no Dense or Conv2D layers"):
        prune(tmp_path / "pool_only", PruningConfig(), tmp_path / "out", data=digits_data)
    assert not (tmp_path / "out").exists()


def test_skip_layers_stay_dense(tiny_model, digits_data, tmp_path):
    config = PruningConfig(target_sparsity=0.5, epochs=2, skip_layers=["conv1"])
    result = prune(tiny_model, config, tmp_path / "pruned", data=digits_data)
    assert "conv1" not in result.layer_sparsity
    conv1 = load_keras_model(tmp_path / "pruned").get_layer("conv1").kernel.numpy()
    assert np.mean(conv1 == 0) < 0.05


def test_layers_under_min_layer_weights_stay_dense(tiny_model, digits_data, tmp_path):
    # The tiny CNN's kernels: conv1 3x3x1x8 = 72 and logits 32x10 = 320 weights stay dense; conv2 (1,152) and dense1
    # are pruned to the target.
    config = PruningConfig(target_sparsity=0.6, epochs=2, min_layer_weights=1000)
    result = prune(tiny_model, config, tmp_path / "pruned", data=digits_data)
    assert sorted(result.layer_sparsity) == ["conv2", "dense1"]
    assert all(sparsity == pytest.approx(0.6, abs=0.02) for sparsity in result.layer_sparsity.values())
    pruned = load_keras_model(tmp_path / "pruned")
    for name in ("conv1", "logits"):
        assert np.mean(pruned.get_layer(name).kernel.numpy() == 0) < 0.05


def test_block_sparsity_zeros_whole_blocks_that_stay_consecutive_in_the_tflite(tiny_model, digits_data, tmp_path):
    config = PruningConfig(target_sparsity=0.75, block_size=(4, 1), epochs=4, learning_rate=1e-3)
    result = prune(tiny_model, config, tmp_path / "pruned", data=digits_data)
    assert result.achieved_sparsity >= 0.73

    pruned = load_keras_model(tmp_path / "pruned")
    *body, head = [layer.kernel.numpy() for layer in pruned.layers if isinstance(layer, keras.layers.Dense)]
    assert body

    def zeros_per_block(kernel):
        # Keras kernel [in, out]: blocks of 4 input rows of one output column.
        return np.sum(kernel[: kernel.shape[0] // 4 * 4].reshape(-1, 4, kernel.shape[1]) == 0, axis=1)

    for kernel in body:
        assert set(np.unique(zeros_per_block(kernel))) <= {0, 4}  # zero together, or not at all
        assert np.mean(zeros_per_block(kernel) == 4) >= 0.7
    assert np.mean(head == 0) >= 0.7 and set(np.unique(zeros_per_block(head))) - {0, 4}  # the head: unstructured

    int8 = quantize(tmp_path / "pruned", QuantizationConfig(), tmp_path / "int8", data=digits_data)
    body_shapes = {kernel.shape[::-1] for kernel in body}  # TFLite stores Dense kernels transposed, [out, in]
    body_int8 = [tensor for tensor in kernels(int8.tflite_path, "INT8") if tensor.shape in body_shapes]
    assert len(body_int8) == len(body)
    for tensor in body_int8:
        # Each block is four consecutive bytes of the file.
        runs = tensor.values[:, : tensor.shape[1] // 4 * 4].reshape(tensor.shape[0], -1, 4)
        assert np.mean(np.all(runs == 0, axis=-1)) >= 0.7


def test_block_larger_than_a_dense_kernel_is_refused_before_training(tiny_model, digits_data, tmp_path):
    with pytest.raises(ConfigError, match=r"block_size: \[1, 64\] is larger than the kernel of Dense layer"):
        prune(tiny_model, PruningConfig(block_size=(1, 64)), tmp_path / "out", data=digits_data)
    assert not (tmp_path / "out").exists()


def test_block_size_and_two_of_four_exclude_each_other():
    with pytest.raises(ConfigError, match="block_size .* cannot be combined with structure 2:4"):
        PruningConfig(structure="2:4", block_size=(4, 1))

"""QAT (whole model and selected layers) and the collaborative chains PQAT, CQAT and PCQAT, end to end to int8."""

import numpy as np
import pytest

from edgeopt.components._shared.errors import ConfigError
from edgeopt.components.evaluation.config import EvaluationConfig
from edgeopt.components.evaluation.core import evaluate_tflite
from edgeopt.components.export.config import ExportConfig
from edgeopt.components.export.core import export_tflite
from edgeopt.components.qat.config import QatConfig
from edgeopt.components.qat.core import quantization_aware_train
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.recipes.core import run_recipe
from tests.helpers import kernels, overall_sparsity

FAST_EVAL = EvaluationConfig(timed_runs=5, warmup_runs=1)


@pytest.fixture(scope="module")
def float_accuracy(tiny_model, digits_data, tmp_path_factory):
    exported = export_tflite(tiny_model, ExportConfig(), tmp_path_factory.mktemp("float"), data=digits_data)
    return evaluate_tflite(exported.tflite_path, digits_data, FAST_EVAL).accuracy


@pytest.mark.slow
def test_qat_then_quantize_gives_int8_within_two_points(tiny_model, digits_data, float_accuracy, tmp_path, unchanged):
    unchanged(tiny_model)
    recipe = RecipeConfig(name="qat", steps=[{"technique": "qat", "config": {"epochs": 2}}, {"technique": "quantize"}])
    tflite_path, records = run_recipe(tiny_model, recipe, tmp_path, data=digits_data)
    assert {t.type_name for t in kernels(tflite_path)} == {"INT8"}
    assert records[0]["result"]["quantized_layers"] == ["conv1", "conv2", "pool", "flatten", "dense1", "logits"]
    assert evaluate_tflite(tflite_path, digits_data, FAST_EVAL).accuracy >= float_accuracy - 0.02


def test_qat_of_selected_layer_types_wraps_only_those(tiny_model, digits_data, tmp_path):
    result = quantization_aware_train(
        tiny_model, QatConfig(layer_types=["Dense"], epochs=1), tmp_path / "qat", data=digits_data
    )
    assert {"dense1", "logits"} <= set(result.quantized_layers)
    assert not {"conv1", "conv2"} & set(result.quantized_layers)


def test_qat_layer_names_that_match_nothing_are_rejected(tiny_model, digits_data, tmp_path):
    with pytest.raises(ConfigError, match=r"\['dense9'\] match no layer"):
        quantization_aware_train(tiny_model, QatConfig(layer_names=["dense9"]), tmp_path / "q", data=digits_data)
    assert not (tmp_path / "q").exists()


CLUSTERS = 16
PRUNE = {"technique": "prune", "config": {"target_sparsity": 0.7, "epochs": 6, "learning_rate": 0.001}}
CLUSTER = {"technique": "cluster", "config": {"number_of_clusters": CLUSTERS, "epochs": 1}}
CLUSTER_SPARSE = {
    "technique": "cluster",
    "config": {"number_of_clusters": CLUSTERS, "epochs": 1, "preserve_sparsity": True},
}
QAT_EPOCHS = 2


def _distinct_per_output_channel(tensor) -> int:
    rows = tensor.values.reshape(tensor.shape[0], -1)
    return max(len(np.unique(row)) for row in rows)


@pytest.mark.parametrize(
    ("name", "steps", "keeps_sparsity", "keeps_clusters"),
    [
        (
            "pqat",
            [PRUNE, {"technique": "qat", "config": {"scheme": "prune_preserve", "epochs": QAT_EPOCHS}}],
            True,
            False,
        ),
        (
            "cqat",
            [CLUSTER, {"technique": "qat", "config": {"scheme": "cluster_preserve", "epochs": QAT_EPOCHS}}],
            False,
            True,
        ),
        (
            "pcqat",
            [
                PRUNE,
                CLUSTER_SPARSE,
                {"technique": "qat", "config": {"scheme": "sparse_cluster_preserve", "epochs": QAT_EPOCHS}},
            ],
            True,
            True,
        ),
    ],
)
@pytest.mark.slow
def test_collaborative_chains_keep_what_earlier_steps_made(
    name, steps, keeps_sparsity, keeps_clusters, tiny_model, digits_data, float_accuracy, tmp_path
):
    recipe = RecipeConfig(name=name, steps=[*steps, {"technique": "quantize"}])
    tflite_path, _ = run_recipe(tiny_model, recipe, tmp_path, data=digits_data)
    int8_kernels = kernels(tflite_path, "INT8")
    big = [t for t in int8_kernels if t.values.size >= 1000]
    if keeps_sparsity:
        assert overall_sparsity(big) >= 0.65
    if keeps_clusters:
        # Per-channel int8 scales map one shared float value to one integer per output channel (+1 for a kept zero).
        assert max(_distinct_per_output_channel(t) for t in big) <= CLUSTERS + 1
    assert evaluate_tflite(tflite_path, digits_data, FAST_EVAL).accuracy >= float_accuracy - 0.06

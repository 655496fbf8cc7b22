"""edgeopt search beyond the digits classifier: a regressor's budget, the registry champion as a second gate, and
models that cannot be fine-tuned."""

import json

import optuna
import pytest

from edgeopt.components._shared.errors import ModelLoadError, UnsupportedModelError
from edgeopt.components._shared.tasks import TaskSpec
from edgeopt.components.evaluation.config import EvaluationConfig
from edgeopt.components.search import core as search_core
from edgeopt.components.search import space as search_space
from edgeopt.components.search.config import SearchConfig
from tests import task_models
from tests.helpers import Untouchable, kernels, overall_sparsity, save_tiny_subclassed_model

FAST_EVALUATION = EvaluationConfig(timed_runs=3, warmup_runs=1)


def _constraints(out) -> list[float]:
    study = optuna.load_study(study_name="edgeopt-search", storage=f"sqlite:///{out / 'search.db'}")
    return [trial.constraints[search_core.CONSTRAINT_KEY] for trial in study.trials]


@pytest.mark.slow
def test_a_regressor_is_searched_with_its_budget_in_percent_of_mae(tmp_path):
    model, data = task_models.regression_task(tmp_path / "task")
    config = SearchConfig(
        trials=3, max_accuracy_drop=5.0, families=["ptq", "prune"], quantize_modes=["full_integer", "dynamic_range"],
        min_epochs=1, max_epochs=1, evaluation=FAST_EVALUATION,
    )  # fmt: skip
    out = tmp_path / "search"
    out.mkdir()
    study = search_core.open_study(config, out)
    repeated = {"family": "ptq", "mode": "dynamic_range", "conv_granularity": "per_channel",
                "dense_granularity": "per_channel"}  # fmt: skip
    study.enqueue_trial(repeated)
    study.enqueue_trial(repeated)
    report = search_core.search(model, config, out, data=data)

    assert report["baseline"]["metric"]["name"] == "mae" and report["baseline"]["accuracy"] is None
    # A redrawn point repeats its first trial's MAE, gate and budget excess instead of running again.
    first, again = report["candidates"][:2]
    assert again["duplicate_of"] == 0 and again["metric"] == first["metric"] and again["gate"] == first["gate"]
    assert _constraints(out)[1] == _constraints(out)[0]
    assert report["search"]["budget_unit"] == "% of baseline mae"
    assert report["search"]["trials_pruned_on_epochs"] is False  # per-epoch reports read top-1 accuracy only
    measured = [c for c in report["candidates"] if not c.get("error")]
    assert len(measured) == 3
    for candidate, constraint in zip(report["candidates"], _constraints(out), strict=True):
        # The budget is the gate's relative MAE degradation, and Optuna's constraint agrees with the gate.
        assert candidate["gate"]["passed"] == (candidate["metric_delta_relative"] <= 5.0)
        assert (constraint <= 0) == candidate["gate"]["passed"]
    passed = [c for c in measured if c["gate"]["passed"]]
    winner = report["search"]["winner"]
    assert winner == (min(passed, key=lambda c: c["gzip_bytes"])["recipe"] if passed else None)

    front = json.loads((out / "pareto.json").read_text())["front"]
    # Lower MAE for more bytes along the front: the error metric counts lower as better.
    assert all(a["metric"] > b["metric"] for a, b in zip(front, front[1:], strict=False))
    assert all(a["gzip_bytes"] < b["gzip_bytes"] for a, b in zip(front, front[1:], strict=False))


@pytest.mark.slow
def test_a_two_input_classifier_is_searched_through_its_named_inputs(tmp_path):
    model, data = task_models.named_input_task(tmp_path)
    config = SearchConfig(
        trials=2, max_accuracy_drop=5.0, families=["prune"], quantize_modes=["full_integer"], max_qat_epochs=1,
        prune_trials_above_drop=None,
        min_epochs=1, max_epochs=1, evaluation=FAST_EVALUATION,
    )  # fmt: skip
    report = search_core.search(model, config, tmp_path / "search", data=data)
    # Its kernels hold a few hundred weights: min_layer_weights choices that would leave nothing to prune are dropped.
    assert report["search"]["config"]["min_layer_weights"] == [0]
    assert [c.get("error") for c in report["candidates"]] == [None, None]
    for candidate in report["candidates"]:
        assert candidate["steps"][0] == "prune" and candidate["steps"][-1] == "quantize"
        # The pruned kernels reached the .tflite as int8 with their zeros (a model this small gains no bytes: its
        # per-channel scales outweigh the weights).
        target = candidate["config"]["steps"][0]["config"]["target_sparsity"]
        assert overall_sparsity(kernels(candidate["tflite_path"], "INT8")) >= target - 0.1
        assert candidate["gate"]["passed"] == (candidate["accuracy_drop"] <= 5.0)
    assert report["search"]["winner"] in {None, *(c["recipe"] for c in report["candidates"])}


@pytest.mark.slow
def test_every_trial_is_also_gated_against_the_champion(tiny_model, digits_data, tmp_path):
    # The champion is the float model itself, and the budget is wide: a trial that prunes 95 % in one epoch stays
    # within the budget against the baseline but loses accuracy to the champion, so it must not win.
    first = search_core.search(
        tiny_model, SearchConfig(trials=1, families=["ptq"], evaluation=FAST_EVALUATION), tmp_path / "first",
        data=digits_data,
    )  # fmt: skip
    champion = first["baseline"]["tflite_path"]
    config = SearchConfig(
        trials=1, max_accuracy_drop=100.0, families=["prune"], min_sparsity=0.95, max_sparsity=0.95, min_epochs=1,
        max_epochs=1, block_sizes=[(1, 1)], prune_trials_above_drop=None, evaluation=FAST_EVALUATION,
    )  # fmt: skip
    out = tmp_path / "second"
    report = search_core.search(tiny_model, config, out, data=digits_data, champion_tflite=champion)

    assert report["champion"]["accuracy"] == pytest.approx(report["baseline"]["accuracy"])
    assert report["search"]["gated_against_champion"] is True
    (candidate,) = report["candidates"]
    assert candidate["accuracy_drop"] > 0  # 95 % of the weights gone after one epoch
    assert candidate["gate"]["passed"] is False
    assert any("vs champion" in reason for reason in candidate["gate"]["reasons"])
    assert _constraints(out) == [search_core.CHAMPION_MISS_EXCESS]
    assert report["search"]["winner"] is None and report["selection"]["winner"] is None


@pytest.mark.slow
def test_a_model_that_cannot_be_fine_tuned_is_searched_over_ptq_only(digits_data, tmp_path):
    model = save_tiny_subclassed_model(tmp_path / "subclassed")
    report = search_core.search(
        model, SearchConfig(trials=2, evaluation=FAST_EVALUATION), tmp_path / "search", data=digits_data
    )
    assert sorted(report["search"]["refused_families"]) == ["cluster", "prune", "prune_cluster"]
    assert "subclassed model" in report["search"]["refused_families"]["prune"]
    assert report["search"]["config"]["families"] == ["ptq"]
    assert [c["steps"] for c in report["candidates"]] == [["quantize"], ["quantize"]]
    assert all(c["tflite_bytes"] for c in report["candidates"])


class _TaskOnly(Untouchable):
    """Training data whose task may be read (metadata), but nothing else."""

    def __init__(self, task):
        object.__setattr__(self, "task", task)


def test_fine_tuning_families_alone_are_refused_before_anything_is_created(tmp_path):
    model = save_tiny_subclassed_model(tmp_path / "subclassed")
    out = tmp_path / "search"
    with pytest.raises(UnsupportedModelError, match=r"cannot run any of its families .*subclassed.*Add the ptq family"):
        search_core.search(model, SearchConfig(families=["prune", "cluster"]), out, data=_TaskOnly(TaskSpec()))
    assert not out.exists()


def test_distillation_families_are_dropped_for_binary_tasks(tiny_model):
    from edgeopt.components._shared.model_format import inspect_model
    from edgeopt.components._shared.tasks import Task

    config = SearchConfig(families=["ptq", "distill", "distill_prune"])
    kept, refused = search_space.searchable_config(config, inspect_model(tiny_model), Task.BINARY)
    assert kept.families == ["ptq"] and sorted(refused) == ["distill", "distill_prune"]
    assert "not binary tasks" in refused["distill"]
    kept, refused = search_space.searchable_config(config, inspect_model(tiny_model), Task.CLASSIFICATION)
    assert kept.families == config.families and refused == {}


@pytest.mark.slow
def test_a_distill_prune_trial_trains_a_narrower_student_and_prunes_it(tiny_model, digits_data, tmp_path):
    config = SearchConfig(trials=1, families=["distill_prune"], quantize_modes=["full_integer"], max_qat_epochs=0,
                          prune_trials_above_drop=None, evaluation=FAST_EVALUATION)  # fmt: skip
    search_core.open_study(config, tmp_path).enqueue_trial(
        {"family": "distill_prune", "width_multiplier": 0.5, "distill_epochs": 3, "block_size": "1x1",
         "target_sparsity": 0.5, "min_layer_weights": 0, "prune_epochs": 1, "prune_learning_rate": 1e-4,
         "mode": "full_integer", "conv_granularity": "per_channel", "dense_granularity": "per_channel"}
    )  # fmt: skip
    report = search_core.search(tiny_model, config, tmp_path, data=digits_data)
    (candidate,) = report["candidates"]
    assert candidate["steps"] == ["distill", "prune", "quantize"] and not candidate.get("error")
    # Half the width: dense1 of the 32-unit tiny CNN has 16 units in the student's int8 file, half of them zero.
    student_dense = [t for t in kernels(candidate["tflite_path"], "INT8") if t.shape[0] == 16 and len(t.shape) == 2]
    assert student_dense and overall_sparsity(student_dense) == pytest.approx(0.5, abs=0.05)
    assert candidate["tflite_bytes"] < report["baseline"]["tflite_bytes"] / 5


def test_a_champion_that_is_not_a_tflite_file_is_refused_before_anything_is_created(tiny_model, tmp_path):
    champion = tmp_path / "champion.tflite"
    champion.write_text("<html>not a model</html>")
    out = tmp_path / "search"
    with pytest.raises(ModelLoadError, match=r"champion.tflite is not a TFLite flatbuffer .* export it again"):
        search_core.search(tiny_model, SearchConfig(), out, data=_TaskOnly(TaskSpec()), champion_tflite=champion)
    assert not out.exists()

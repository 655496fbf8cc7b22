"""edgeopt search: a few real trials on the tiny CNN, the resume from search.db, the outputs and the CLI."""

import csv
import json
import shutil
from pathlib import Path

import optuna
import pytest

from edgeopt.components._shared.errors import ConfigError
from edgeopt.components.cli import main
from edgeopt.components.evaluation.config import EvaluationConfig
from edgeopt.components.search import core as search_core
from edgeopt.components.search import space as search_space
from edgeopt.components.search.cli_commands import parse_budget
from edgeopt.components.search.config import SearchConfig
from tests.helpers import activation_types, kernels, overall_sparsity

FAST_EVALUATION = EvaluationConfig(timed_runs=3, warmup_runs=1)
PTQ_ONLY = {"families": ["ptq"], "quantize_modes": ["full_integer", "dynamic_range"], "evaluation": FAST_EVALUATION}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_sparsity": 0.9, "max_sparsity": 0.6}, "min_sparsity 0.9 > max_sparsity 0.6"),
        ({"min_clusters": 32, "max_clusters": 8}, "min_clusters 32 > max_clusters 8"),
        ({"objectives": ["gzip_bytes", "gzip_bytes"]}, "objectives repeat"),
        ({"objectives": ["gzip_bytes", "tflite_bytes", "latency_p50"]}, "at most 2 items"),
        ({"quantize_modes": ["float16"]}, r"\['float16'\] are not searched"),
        ({"families": ["lowrank"]}, "families.0"),
        ({"distill_epochs": (10, 5)}, r"distill_epochs \[10, 5\] must be \(fewest, most\)"),
        ({"width_multipliers": [0.5, 1.5]}, r"width_multipliers \[0.5, 1.5\] must lie in \(0, 1\]"),
        ({"start_from_recipes": ["prune_2of4_int8"]}, r"prune step sets structure='2:4', which the search does not"),
        ({"start_from_recipes": ["pqat"]}, r"pqat's prune_epochs 12 lies outside the search space"),
        ({"start_from_recipes": ["lowrank_int8"]}, r"lowrank_int8 \(factorize\+quantize\) is no chain the search"),
        ({"start_from_recipes": ["ptq_fp16"]}, r"ptq_fp16 is no chain this search draws .*float16"),
        ({"start_from_recipes": ["ptq_int9"]}, r"no built-in recipe 'ptq_int9'"),
    ],
)
def test_search_config_rejects_bad_spaces(fields, message):
    with pytest.raises(ConfigError, match=message):
        SearchConfig(**fields)


def test_budget_flag_parses_the_accuracy_drop_and_names_the_fix():
    assert parse_budget("max_accuracy_drop=0.5") == 0.5
    with pytest.raises(ConfigError, match="max_accuracy_drop=1.0"):
        parse_budget("max_size=3")
    with pytest.raises(ConfigError, match="not a number"):
        parse_budget("max_accuracy_drop=lots")


@pytest.mark.slow
def test_search_resumes_without_rerunning_finished_trials(tiny_model, digits_data, tmp_path, monkeypatch, unchanged):
    unchanged(tiny_model)
    recipes_run = []
    real_run_recipe = search_core.run_recipe

    def counting_run_recipe(model_path, recipe, *args, **kwargs):
        recipes_run.append(recipe.name)
        return real_run_recipe(model_path, recipe, *args, **kwargs)

    monkeypatch.setattr(search_core, "run_recipe", counting_run_recipe)
    out = tmp_path / "search"
    first = search_core.search(tiny_model, SearchConfig(trials=2, **PTQ_ONLY), out, data=digits_data)
    ran = lambda report, start: [c["recipe"] for c in report["candidates"][start:] if "duplicate_of" not in c]  # noqa: E731
    assert recipes_run == ran(first, 0) and recipes_run[0] == "trial_0000"
    assert first["search"]["trials"] == 2
    started = {c["recipe"]: c["trial"] for c in first["candidates"]}

    # The same folder and study with 4 trials in total: only trials 2 and 3 run (those that redraw the parameters
    # of an earlier trial of this small space repeat its result instead).
    second = search_core.search(tiny_model, SearchConfig(trials=4, **PTQ_ONLY), out, data=digits_data)
    assert recipes_run == ran(first, 0) + ran(second, 2)
    study = optuna.load_study(study_name="edgeopt-search", storage=f"sqlite:///{out / 'search.db'}")
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert second["search"]["trials"] == 4 and second["search"]["trials_this_run"] == 2
    # Finished trials are read back from storage unchanged, not re-measured.
    assert {c["recipe"]: c["trial"] for c in second["candidates"][:2]} == started

    # Every trial is a real candidate measured against the float baseline, in optimize's report shape.
    baseline = second["baseline"]
    for candidate in second["candidates"]:
        assert candidate["steps"] == ["quantize"]
        assert (
            candidate["tflite_bytes"] < baseline["tflite_bytes"] / 2.5
        )  # int8 weights; graph overhead on a tiny model
        assert candidate["accuracy_drop"] == pytest.approx((baseline["accuracy"] - candidate["accuracy"]) * 100)
        assert candidate["gate"]["passed"] == (candidate["accuracy_drop"] <= 1.0)
    winner = second["search"]["winner"]
    within = [c for c in second["candidates"] if c["accuracy_drop"] <= 1.0]
    assert winner == min(within, key=lambda c: (c["gzip_bytes"], -c["accuracy"]))["recipe"]

    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto["objective"] == "gzip_bytes"
    front = pareto["front"]
    assert [p["gzip_bytes"] for p in front] == sorted(p["gzip_bytes"] for p in front)
    assert all(
        a["accuracy"] < b["accuracy"] for a, b in zip(front, front[1:], strict=False)
    )  # strictly better for more bytes
    assert winner in [p["recipe"] for p in front]
    with open(out / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["recipe"] for row in rows] == ["trial_0000", "trial_0001", "trial_0002", "trial_0003"]
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "report.json").read_text())["search"]["winner"] == winner


def test_a_stale_running_trial_is_marked_failed_and_not_counted(tiny_model, digits_data, tmp_path):
    out = tmp_path / "search"
    out.mkdir()
    config = SearchConfig(trials=1, **PTQ_ONLY)
    search_core.open_study(config, out).ask()  # a trial a killed process left RUNNING
    report = search_core.search(tiny_model, config, out, data=digits_data)
    study = optuna.load_study(study_name="edgeopt-search", storage=f"sqlite:///{out / 'search.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert [c["recipe"] for c in report["candidates"]] == ["trial_0001"]


def test_resuming_with_other_objectives_is_refused(tmp_path):
    search_core.open_study(SearchConfig(objectives=["gzip_bytes"]), tmp_path)
    with pytest.raises(ConfigError, match=r"minimises \['gzip_bytes'\], not \['latency_p50'\]"):
        search_core.open_study(SearchConfig(objectives=["latency_p50"]), tmp_path)


@pytest.mark.slow
def test_two_objectives_use_nsga2_and_an_enqueued_pqat_chain_runs(tiny_model, digits_data, tmp_path):
    config = SearchConfig(
        trials=1,
        families=["prune"],
        objectives=["gzip_bytes", "latency_p50"],
        quantize_modes=["full_integer"],
        evaluation=FAST_EVALUATION,
    )
    # A known-good chain enqueued before the search (Optuna's warm start) runs first, exactly as given: prune 60 %,
    # then one epoch of sparsity-preserving QAT.
    search_core.open_study(config, tmp_path).enqueue_trial(
        {"family": "prune", "block_size": "1x1", "target_sparsity": 0.6, "min_layer_weights": 0, "prune_epochs": 1,
         "prune_learning_rate": 1e-3, "mode": "full_integer", "qat_epochs": 1}
    )  # fmt: skip
    report = search_core.search(tiny_model, config, tmp_path, data=digits_data)
    assert report["search"]["sampler"] == "NSGAIISampler"
    (candidate,) = report["candidates"]
    assert candidate["steps"] == ["prune", "qat", "quantize"]
    assert candidate["config"]["steps"][1]["config"]["scheme"] == "prune_preserve"
    prune_result = candidate["step_records"][0]["result"]
    assert prune_result["achieved_sparsity"] == pytest.approx(0.6, abs=0.02)
    # QAT kept the zeros: the int8 kernels of the .tflite are still 60 % sparse.
    assert overall_sparsity(kernels(candidate["tflite_path"], "INT8")) == pytest.approx(0.6, abs=0.05)
    study = optuna.load_study(study_name="edgeopt-search", storage=f"sqlite:///{tmp_path / 'search.db'}")
    assert study.trials[0].values == [candidate["gzip_bytes"], candidate["latency_ms"]["p50"]]


def test_start_recipes_run_first_with_their_own_settings_and_once(tiny_model, digits_data, tmp_path):
    config = SearchConfig(trials=2, start_from_recipes=["ptq_int8", "ptq_int4"],
                          **(PTQ_ONLY | {"quantize_modes": ["full_integer", "int4_weight_only"]}))  # fmt: skip
    report = search_core.search(tiny_model, config, tmp_path, data=digits_data)
    assert report["search"]["started_from_recipes"] == ["ptq_int8", "ptq_int4"]
    int8, int4 = report["candidates"]
    # ptq_int8's own settings: full integer, Dense kernels per tensor, convolutions per channel
    assert int8["trial"]["params"] == {"family": "ptq", "mode": "full_integer", "conv_granularity": "per_channel",
                                       "dense_granularity": "per_tensor"}  # fmt: skip
    stored = {len(t.shape): t.scale_count for t in kernels(int8["tflite_path"], "INT8")}
    assert stored[2] == 1 and stored[4] > 1
    assert int4["trial"]["params"] == {"family": "ptq", "mode": "int4_weight_only"}
    assert int4["gzip_bytes"] < int8["gzip_bytes"]

    # Resumed with more trials, the start recipes are not enqueued again: one more trial, drawn by TPE.
    resumed = search_core.search(tiny_model, config.model_copy(update={"trials": 3}), tmp_path, data=digits_data)
    study = optuna.load_study(study_name="edgeopt-search", storage=f"sqlite:///{tmp_path / 'search.db'}")
    assert [bool(t.system_attrs.get("fixed_params")) for t in study.trials] == [True, True, False]
    assert len(resumed["candidates"]) == 3


def test_a_trial_that_redraws_earlier_parameters_reuses_their_result(tiny_model, digits_data, tmp_path):
    config = SearchConfig(trials=2, families=["ptq"], quantize_modes=["full_integer"], evaluation=FAST_EVALUATION)
    study = search_core.open_study(config, tmp_path)
    params = {
        "family": "ptq",
        "mode": "full_integer",
        "conv_granularity": "per_channel",
        "dense_granularity": "per_tensor",
    }
    study.enqueue_trial(params)
    study.enqueue_trial(params)  # as TPE does when it keeps drawing one good point
    report = search_core.search(tiny_model, config, tmp_path, data=digits_data)
    first, second = report["candidates"]
    assert first["trial"]["params"] == second["trial"]["params"] == params
    assert second["duplicate_of"] == 0 and second["recipe"] == "trial_0001"
    assert second["tflite_path"] == first["tflite_path"] and second["gzip_bytes"] == first["gzip_bytes"]
    assert not (tmp_path / "trials" / "trial_0001").exists()  # not run again
    stored = optuna.load_study(study_name="edgeopt-search", storage=f"sqlite:///{tmp_path / 'search.db'}")
    assert stored.trials[1].values == stored.trials[0].values == [first["gzip_bytes"]]
    assert stored.trials[1].constraints == stored.trials[0].constraints
    assert report["search"]["winner"] == "trial_0000"  # ties go to the earlier trial


def test_aeq_static_trials_keep_the_drawn_layers_in_16x8(tiny_model, digits_data, tmp_path):
    config = SearchConfig(
        trials=2, families=["ptq"], quantize_modes=["aeq_static_int8"], max_int16x8_layers=1, evaluation=FAST_EVALUATION
    )
    report = search_core.search(tiny_model, config, tmp_path, data=digits_data)
    drawn = {c["recipe"]: c["trial"]["params"]["int16x8_top_k"] for c in report["candidates"]}
    assert 1 in drawn.values()  # the seeded sampler draws it; each trial is then checked against what it drew
    for candidate in report["candidates"]:
        quantize_dir = Path(candidate["tflite_path"]).parent
        int16 = {name for name, kind in activation_types(candidate["tflite_path"]).items() if kind == "INT16"}
        assert bool(int16) == (drawn[candidate["recipe"]] == 1)
        if int16:
            kept = json.loads((quantize_dir / "layer_sensitivity.json").read_text())["int16x8_layers"]
            assert len(kept) == 1 and candidate["accuracy_drop"] <= 1.0


@pytest.mark.slow
def test_cli_search_logs_each_trial_as_a_child_run(tiny_model, digits_examples, tmp_path, capsys, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "out"
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [
        "search", "--model", str(tiny_model), "--examples", str(digits_examples), "--data-spec",
        "configs/data/digits.yaml", "--budget", "max_accuracy_drop=1.0", "--family", "ptq", "--trials", "2",
        "--timed-runs", "3", "--warmup-runs", "1", "--objective", "latency_p50", "--register-model", "tiny-search",
        "--out", str(out), "--tracking-uri", store, "--experiment", "s",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    winner = report["search"]["winner"]
    assert winner and f"winner {winner}" in printed
    passed = [c for c in report["candidates"] if c["gate"]["passed"]]
    assert winner == min(passed, key=lambda c: c["latency_ms"]["p50"])["recipe"]  # the search's first objective
    assert report["selection"] == {"rule": {"objective": "latency_p50", "among": "passed"}, "winner": winner}
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    runs = client.search_runs([client.get_experiment_by_name("s").experiment_id])
    children = {run.info.run_name: run for run in runs if "mlflow.parentRunId" in run.data.tags}
    assert sorted(children) == ["trial_0000", "trial_0001"]
    assert all(run.info.status == "FINISHED" for run in runs)
    # --register-model registers the search's winner (not optimize's default, the smallest gzip size) as challenger.
    challenger = client.get_model_version_by_alias("tiny-search", "challenger")
    assert challenger.run_id == children[winner].info.run_id

    # Promoted to champion, it gates the next scheduled search as it gates optimize: measured on the same data.
    client.set_registered_model_alias("tiny-search", "champion", challenger.version)
    again = tmp_path / "again"
    assert main([str(again) if arg == str(out) else arg for arg in argv]) == 0
    second = json.loads((again / "report.json").read_text())
    assert second["search"]["gated_against_champion"] is True
    chosen = next(c for c in report["candidates"] if c["recipe"] == winner)
    assert second["champion"]["tflite_bytes"] == chosen["tflite_bytes"]
    for candidate in second["candidates"]:
        loses = candidate["accuracy"] < second["champion"]["accuracy"]
        assert candidate["gate"]["passed"] == (candidate["accuracy_drop"] <= 1.0 and not loses)

    assert main([*argv[:-4], "--budget", "max_drop=1", "--no-tracking"]) == 2
    assert "max_accuracy_drop=1.0" in capsys.readouterr().err


def test_kfp_search_component_outputs_the_winner(tiny_model, digits_examples, tmp_path):
    from kfp import dsl

    from edgeopt.components.demo.digits import digits_data_spec
    from edgeopt.components.search.kfp_component import search_model

    def artifact(kind, name):
        return kind(name=name, uri=str(tmp_path / name), metadata={})

    best, results, metrics = artifact(dsl.Model, "best"), artifact(dsl.Artifact, "results"), artifact(dsl.Metrics, "m")
    report = artifact(dsl.Markdown, "report.md")
    search_model.python_func(
        model=dsl.Model(name="model", uri=str(tiny_model), metadata={}),
        examples=dsl.Dataset(name="examples", uri=str(digits_examples), metadata={}),
        best_model=best, search_results=results, metrics=metrics, report=report,
        config={"trials": 2, "families": ["ptq"], "evaluation": {"timed_runs": 3, "warmup_runs": 1}},
        data_spec=digits_data_spec().to_dict(),
    )  # fmt: skip
    winner = json.loads((tmp_path / "results" / "report.json").read_text())["search"]["winner"]
    assert winner and best.metadata["recipe"] == winner and results.metadata["winner"] == winner
    winner_tflite = tmp_path / "results" / "trials" / winner / "00_quantize" / "model.tflite"
    assert (tmp_path / "best" / "model.tflite").read_bytes() == winner_tflite.read_bytes()
    assert metrics.metadata["trials"] == 2
    assert winner in (tmp_path / "report.md").read_text()
    first = json.loads((tmp_path / "results" / "report.json").read_text())
    assert "champion" not in first  # fetch_champion's folder was not given

    # With fetch_champion's folder holding the champion (here the float model), every trial is gated against it.
    champion = tmp_path / "champion"
    champion.mkdir()
    shutil.copy2(first["baseline"]["tflite_path"], champion / "model.tflite")
    gated = artifact(dsl.Artifact, "gated")
    search_model.python_func(
        model=dsl.Model(name="model", uri=str(tiny_model), metadata={}),
        examples=dsl.Dataset(name="examples", uri=str(digits_examples), metadata={}),
        best_model=artifact(dsl.Model, "best2"), search_results=gated, metrics=artifact(dsl.Metrics, "m2"),
        report=artifact(dsl.Markdown, "report2.md"), champion=dsl.Model(name="c", uri=str(champion), metadata={}),
        config={"trials": 1, "families": ["ptq"], "evaluation": {"timed_runs": 3, "warmup_runs": 1}},
        data_spec=digits_data_spec().to_dict(),
    )  # fmt: skip
    second = json.loads((tmp_path / "gated" / "report.json").read_text())
    assert second["search"]["gated_against_champion"] is True
    assert second["champion"]["tflite_bytes"] == first["baseline"]["tflite_bytes"]


@pytest.mark.slow
def test_fine_tuning_trials_are_pruned_on_per_epoch_accuracy(tiny_model, digits_data, tmp_path):
    # A threshold below any possible drop: the pruner stops the trial at its first epoch after the warm-up one.
    config = SearchConfig(
        trials=1, families=["prune"], min_epochs=3, max_epochs=3, prune_trials_above_drop=-100.0,
        evaluation=FAST_EVALUATION,
    )  # fmt: skip
    report = search_core.search(tiny_model, config, tmp_path, data=digits_data)
    (trial,) = optuna.load_study(study_name="edgeopt-search", storage=f"sqlite:///{tmp_path / 'search.db'}").trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert sorted(trial.intermediate_values) == [0, 1]  # epoch 1 (warm-up) and epoch 2, then stopped
    (candidate,) = report["candidates"]
    assert candidate["error"].startswith("TrialPruned: pruned after fine-tuning epoch 2: eval accuracy drop")
    assert not (tmp_path / "trials" / "trial_0000" / "00_prune").exists()  # stopped inside fit: no output published
    assert report["search"]["winner"] is None


def test_tfx_model_searcher_validates_early_and_outputs_the_winner(tiny_model, digits_examples, tmp_path):
    from tfx import types
    from tfx.types import standard_artifacts

    from edgeopt.components._shared import tfx_component as face
    from edgeopt.components.search.tfx_component import ModelSearcher, ModelSearcherExecutor

    def channel(kind):
        return types.Channel(type=kind)

    with pytest.raises(ConfigError, match="SearchConfig.trials"):
        ModelSearcher(channel(standard_artifacts.Model), channel(standard_artifacts.Examples), {"trials": 0},
                      data_spec="configs/data/digits.yaml")  # fmt: skip

    def artifact(kind, uri):
        instance = kind()
        instance.uri = str(uri)
        return instance

    output = artifact(standard_artifacts.Model, tmp_path / "best")
    config = SearchConfig(trials=2, **PTQ_ONLY)
    properties = face.data_source_properties(data_spec="configs/data/digits.yaml")
    ModelSearcherExecutor().Do(
        {face.MODEL_KEY: [artifact(standard_artifacts.Model, tiny_model)],
         face.EXAMPLES_KEY: [artifact(standard_artifacts.Examples, digits_examples)]},
        {face.OUTPUT_MODEL_KEY: [output]},
        {face.CONFIG_KEY: config.to_json(), face.COMPONENT_VERSION_KEY: "test", **properties},
    )  # fmt: skip
    report = json.loads((tmp_path / "best" / "search" / "report.json").read_text())
    winner = next(c for c in report["candidates"] if c["recipe"] == report["search"]["winner"])
    assert output.get_string_custom_property("recipe") == winner["recipe"]
    assert output.get_int_custom_property("gzip_bytes") == winner["gzip_bytes"]
    assert (tmp_path / "best" / "Format-Serving" / "model.tflite").stat().st_size == winner["tflite_bytes"]


@pytest.mark.parametrize(
    ("params", "quantize"),
    [
        ({"family": "ptq", "mode": "int4_weight_only"}, {"mode": "int4_weight_only"}),
        (
            {
                "family": "ptq",
                "mode": "full_integer",
                "conv_granularity": "per_channel",
                "dense_granularity": "per_tensor",
                "float_top_k": 2,
            },
            {"mode": "full_integer", "dense_granularity": "per_tensor", "float_top_k": 2},
        ),
        # Per-tensor convolutions turn every kernel per tensor: no Dense granularity is drawn.
        (
            {"family": "ptq", "mode": "full_integer", "conv_granularity": "per_tensor", "float_top_k": 0},
            {"mode": "full_integer", "conv_granularity": "per_tensor", "dense_granularity": "per_tensor"},
        ),
        # AI Edge Quantizer's static int8 draws no Dense granularity (it scales per channel itself).
        (
            {"family": "ptq", "mode": "aeq_static_int8", "int16x8_top_k": 1},
            {"mode": "aeq_static_int8", "int16x8_top_k": 1},
        ),
    ],
)
def test_suggested_recipes_are_valid_chains(params, quantize):
    config = SearchConfig(
        quantize_modes=["full_integer", "int4_weight_only", "aeq_static_int8"], max_float_layers=2, max_int16x8_layers=2
    )
    recipe = search_space.suggest_recipe(optuna.trial.FixedTrial(params), config)
    # Trials are checked by their gate on the eval split, not by top-1 agreement with the Keras model.
    assert recipe.steps[-1].config.model_dump(mode="json", exclude_unset=True) == {
        **quantize,
        "validation": {"min_top1_agreement": 0.0},
    }
    assert recipe.gate.max_accuracy_drop == 1.0

    chain = {**params, "family": "prune_cluster", "block_size": "4x1", "target_sparsity": 0.85, "prune_epochs": 2,
             "min_layer_weights": 1000, "prune_learning_rate": 5e-4, "clusters": 16, "centroid_init": "linear",
             "cluster_epochs": 1, "cluster_learning_rate": 1e-4, "qat_epochs": 0}  # fmt: skip
    recipe = search_space.suggest_recipe(optuna.trial.FixedTrial(chain), config)
    assert recipe.technique_chain == "prune+cluster+quantize"
    prune, cluster = recipe.steps[0].config, recipe.steps[1].config
    assert prune.block_size == (4, 1) and prune.target_sparsity == 0.85 and prune.learning_rate == 5e-4
    assert prune.min_layer_weights == 1000
    assert cluster.number_of_clusters == 16 and cluster.preserve_sparsity and cluster.learning_rate == 1e-4
    if params["mode"] == "full_integer":
        # PCQAT: a QAT step that keeps the zeros and the clusters, and no float layers drawn after QAT.
        recipe = search_space.suggest_recipe(optuna.trial.FixedTrial({**chain, "qat_epochs": 2}), config)
        assert recipe.technique_chain == "prune+cluster+qat+quantize"
        qat = recipe.steps[2].config
        assert qat.scheme == "sparse_cluster_preserve" and qat.epochs == 2
        # QAT's fake-quant ranges fix the scales: no float layers and no granularity drawn after it.
        assert recipe.steps[-1].config.model_dump(exclude_unset=True).keys() == {"mode", "validation"}


def test_models_qat_cannot_quantize_get_no_qat_steps(tmp_path):
    from edgeopt.components._shared.keras_bootstrap import keras
    from edgeopt.components._shared.model_format import inspect_model

    keras.utils.set_random_seed(0)
    # LayerNormalization: prunable and clusterable (no kernel to touch), but not in tfmot's QAT registry.
    layers = [keras.layers.Input((4,)), keras.layers.Dense(8, name="dense"),
              keras.layers.LayerNormalization(name="norm"), keras.layers.Dense(2, name="head")]  # fmt: skip
    model = keras.Sequential(layers)
    model.save(tmp_path / "dense_ln")
    config, refused = search_space.searchable_config(SearchConfig(), inspect_model(tmp_path / "dense_ln"))
    assert config.max_qat_epochs == 0 and config.families == SearchConfig().families
    assert list(refused) == ["qat"] and "QAT cannot quantize layers" in refused["qat"]
    config, refused = search_space.searchable_config(
        SearchConfig(families=["ptq"]), inspect_model(tmp_path / "dense_ln")
    )
    assert refused == {} and config.max_qat_epochs == 2  # no fine-tuning family: nothing to drop


def test_cli_flags_override_the_config_yaml(tmp_path):
    from edgeopt.components.cli import build_parser
    from edgeopt.components.search.cli_commands import search_config

    yaml_path = tmp_path / "search.yaml"
    yaml_path.write_text("trials: 30\nfamilies: [prune]\nmax_accuracy_drop: 0.5\nmin_sparsity: 0.7\n")
    args = build_parser().parse_args(
        ["search", "--model", "m", "--examples", "e", "--data-spec", "d.yaml", "--out", "o", "--config", str(yaml_path),
         "--trials", "3", "--objective", "tflite_bytes", "--objective", "latency_p50", "--timed-runs", "7",
         "--max-int16x8-layers", "2", "--family", "ptq", "--start-from", "ptq_int8"]
    )  # fmt: skip
    config = search_config(args)
    assert (config.trials, config.max_accuracy_drop, config.min_sparsity) == (3, 0.5, 0.7)
    assert config.start_from_recipes == ["ptq_int8"]
    assert config.max_int16x8_layers == 2
    assert [f.value for f in config.families] == ["ptq"]
    assert [o.value for o in config.objectives] == ["tflite_bytes", "latency_p50"]
    assert config.evaluation.timed_runs == 7

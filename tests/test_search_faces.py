"""The search in the pipelines: TFX ModelOptimizer(search=...) and the TFX pipeline's search branch, the KFP pipeline
compiled with its search_model step, and the search's winner joining the KFP selection."""

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from tfx import types
from tfx.types import standard_artifacts

from edgeopt.components._shared import tfx_component as face
from edgeopt.components._shared.errors import ConfigError
from edgeopt.components.evaluation.config import EvaluationConfig
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.recipes.tfx_component import SEARCH_KEY, ModelOptimizer, ModelOptimizerExecutor
from edgeopt.components.search.config import SearchConfig
from edgeopt.components.search.core import search
from edgeopt.pipelines.config import PipelineConfig

DATA_SPEC = "configs/data/digits.yaml"
PTQ_SEARCH = {
    "trials": 2,
    "families": ["ptq"],
    "quantize_modes": ["full_integer", "dynamic_range"],
    "evaluation": EvaluationConfig(timed_runs=3, warmup_runs=1).to_dict(),
}


def channel(kind):
    return types.Channel(type=kind)


def artifact(kind, uri):
    instance = kind()
    instance.uri = str(uri)
    return instance


def test_model_optimizer_takes_a_search_config_and_publishes_the_winner(tiny_model, digits_examples, tmp_path):
    model, examples = channel(standard_artifacts.Model), channel(standard_artifacts.Examples)
    with pytest.raises(ConfigError, match="not both"):
        ModelOptimizer(model, examples, RecipeConfig.builtin("ptq_int8"), search=PTQ_SEARCH, data_spec=DATA_SPEC)
    with pytest.raises(ConfigError, match=r"SearchConfig\.trials"):
        ModelOptimizer(model, examples, search={"trials": 0}, data_spec=DATA_SPEC)
    component = ModelOptimizer(model, examples, search=PTQ_SEARCH, data_spec=DATA_SPEC)
    assert component.exec_properties.get(face.CONFIG_KEY) is None
    assert SearchConfig.from_json(component.exec_properties[SEARCH_KEY]) == SearchConfig.from_dict(PTQ_SEARCH)

    output = artifact(standard_artifacts.Model, tmp_path / "best")
    ModelOptimizerExecutor().Do(
        {face.MODEL_KEY: [artifact(standard_artifacts.Model, tiny_model)],
         face.EXAMPLES_KEY: [artifact(standard_artifacts.Examples, digits_examples)]},
        {face.OUTPUT_MODEL_KEY: [output]},
        {**component.exec_properties, face.COMPONENT_VERSION_KEY: "test"},
    )  # fmt: skip
    report = json.loads((tmp_path / "best" / "search" / "report.json").read_text())
    winner = next(c for c in report["candidates"] if c["recipe"] == report["search"]["winner"])
    assert len(report["candidates"]) == 2 and winner["gate"]["passed"]
    served = tmp_path / "best" / "Format-Serving" / "model.tflite"
    assert served.read_bytes() == Path(winner["tflite_path"]).read_bytes()
    assert output.get_string_custom_property("recipe") == winner["recipe"]
    # The artifact carries the recipe that made the .tflite (what CompressionEvaluator reads) and the search.
    assert json.loads(output.get_string_custom_property("edgeopt_config")) == winner["config"]
    assert json.loads(output.get_string_custom_property("edgeopt_search_config"))["trials"] == 2
    assert output.get_int_custom_property("gzip_bytes") == winner["gzip_bytes"]


def test_tfx_pipeline_adds_a_search_branch_gated_on_its_budget(tmp_path):
    from edgeopt.pipelines.tfx_pipeline import create_pipeline

    paths = {"data_root": str(tmp_path / "data"), "pipeline_root": str(tmp_path / "root"),
             "serving_root": str(tmp_path / "serving"), "metadata_path": str(tmp_path / "m.sqlite")}  # fmt: skip
    plain = create_pipeline(PipelineConfig(recipes=["ptq_int8"]), **paths)
    assert not [c.id for c in plain.components if c.id.endswith("_search")]
    config = PipelineConfig(recipes=["ptq_int8"], search={**PTQ_SEARCH, "max_accuracy_drop": 0.5})
    nodes = {c.id: c for c in create_pipeline(config, **paths).components}
    assert {"Optimize_ptq_int8", "Optimize_search", "Evaluate_search", "Push_search"} <= set(nodes)
    assert json.loads(nodes["Optimize_search"].exec_properties[SEARCH_KEY])["max_accuracy_drop"] == 0.5
    assert json.loads(nodes["Evaluate_search"].exec_properties["gate"])["max_accuracy_drop"] == 0.5


def test_kfp_pipeline_compiles_with_the_search_step_feeding_the_selection(tmp_path):
    from edgeopt.pipelines.kfp_pipeline import COMPILED_DIR, compile_pipeline

    path = compile_pipeline(PipelineConfig(search={**PTQ_SEARCH, "trials": 5}), tmp_path / "pipeline.yaml")
    spec = yaml.safe_load(path.read_text())
    assert "comp-search-model" in spec["components"] and "exec-search-model" in spec["deploymentSpec"]["executors"]
    tasks = spec["root"]["dag"]["tasks"]
    config = tasks["search-model"]["inputs"]["parameters"]["config"]["runtimeValue"]["constant"]
    assert config["trials"] == 5 and config["families"] == ["ptq"]
    fed = tasks["select-winner"]["inputs"]["artifacts"]["search_results"]["taskOutputArtifact"]
    assert fed == {"producerTask": "search-model", "outputArtifactKey": "search_results"}
    # The registry's champion gates the search's trials as it gates the recipes' evaluations.
    champion = tasks["search-model"]["inputs"]["artifacts"]["champion"]["taskOutputArtifact"]
    assert champion == {"producerTask": "fetch-champion", "outputArtifactKey": "champion"}
    with pytest.raises(ConfigError, match="set 100"):
        compile_pipeline(PipelineConfig(search={"prune_trials_above_drop": None}), tmp_path / "refused.yaml")
    # The checked-in default pipeline (no search in the default PipelineConfig) has no search step.
    default = yaml.safe_load((COMPILED_DIR / "retrain_and_compress.yaml").read_text())
    assert "search-model" not in default["root"]["dag"]["tasks"]


def test_the_search_winner_joins_the_kfp_selection_from_a_moved_folder(tiny_model, digits_data, tmp_path):
    from edgeopt.pipelines.steps import bundle_candidates

    ran = search(tiny_model, SearchConfig.from_dict(PTQ_SEARCH), tmp_path / "search-step", data=digits_data)
    # Each KFP step sees an artifact at its own local path: the report's absolute paths are the search step's.
    shutil.move(tmp_path / "search-step", tmp_path / "moved")
    winner, markdown = bundle_candidates([], {}, tmp_path / "bundle", tiny_model, search_dir=str(tmp_path / "moved"))
    expected = ran["search"]["winner"]
    assert winner == expected and f"winner: {expected}" in markdown
    trial_tflite = next(c["tflite_path"] for c in ran["candidates"] if c["recipe"] == expected)
    relative = Path(trial_tflite).relative_to(tmp_path / "search-step")
    bundled = tmp_path / "bundle" / "candidates" / expected / "model.tflite"
    assert bundled.read_bytes() == (tmp_path / "moved" / relative).read_bytes()
    report = json.loads((tmp_path / "bundle" / "report.json").read_text())
    assert [c["recipe"] for c in report["candidates"]] == [expected] and report["selection"]["winner"] == expected


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(marker: str, language: str = "python") -> str:
    match = re.search(rf"<!-- {marker} -->\s*```{language}\n(.*?)```", README.read_text(), re.S)
    assert match, f"README.md lost its {marker} block"
    return match.group(1)


def test_readme_search_cli_example_parses_to_the_config_it_promises():
    from edgeopt.components.cli import build_parser
    from edgeopt.components.search.cli_commands import search_config

    argv = shlex.split(readme_block("tested-search-cli", "bash").replace("\\\n", " "))
    assert argv[:2] == ["edgeopt", "search"]
    args = build_parser().parse_args(argv[1:])
    config = search_config(args)
    assert (config.trials, config.max_accuracy_drop, config.max_float_layers) == (40, 1.0, 1)
    assert args.out == "search-output" and [o.value for o in config.objectives] == ["gzip_bytes"]


@pytest.mark.slow
def test_readme_search_python_example_runs(tiny_model, digits_data, tmp_path, monkeypatch):
    from edgeopt.components.search import core

    real_search = core.search

    def two_trials(model_path, config, *args, **kwargs):  # the README's 40 trials, cut to 2 for the test
        fewer = SearchConfig.from_dict({**config.model_dump(mode="json"), "trials": 2, "families": ["ptq"]})
        return real_search(model_path, fewer, *args, **kwargs)

    monkeypatch.setattr(core, "search", two_trials)
    monkeypatch.chdir(tmp_path)
    namespace = {"model": tiny_model, "data": digits_data}
    exec(readme_block("tested-search-python"), namespace)
    assert namespace["report"]["search"]["winner"] == namespace["report"]["selection"]["winner"]
    assert (tmp_path / "search-output" / "pareto.json").exists()


def test_readme_search_tfx_and_kfp_examples_build_the_steps(tmp_path, monkeypatch):
    from tfx import v1 as tfx

    example_gen = tfx.components.CsvExampleGen(input_base=str(tmp_path / "csv"))
    trainer = tfx.components.Trainer(
        run_fn="edgeopt.pipelines.digits_trainer_module.run_fn",
        examples=example_gen.outputs["examples"],
        train_args=tfx.proto.TrainArgs(num_steps=1),
        eval_args=tfx.proto.EvalArgs(num_steps=1),
    )
    namespace = {
        "trainer": trainer,
        "example_gen": example_gen,
        "module_file": "edgeopt.pipelines.digits_trainer_module",
    }
    exec(readme_block("tested-search-tfx"), namespace)
    searcher = namespace["searcher"]
    assert searcher.id == "Optimize_search" and json.loads(searcher.exec_properties[SEARCH_KEY])["trials"] == 40

    monkeypatch.chdir(tmp_path)
    exec(readme_block("tested-search-kfp"), {})
    tasks = yaml.safe_load((tmp_path / "retrain_search_compress.yaml").read_text())["root"]["dag"]["tasks"]
    assert "search_results" in tasks["select-winner"]["inputs"]["artifacts"]

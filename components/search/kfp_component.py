"""KFP face of the search: `search_model` runs every trial in-process (Model + Dataset -> the winner's .tflite)."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from edgeopt.components._shared.kfp_component import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def search_model(
    model: Input[Model],
    examples: Input[Dataset],
    best_model: Output[Model],
    search_results: Output[Artifact],
    metrics: Output[Metrics],
    report: Output[Markdown],
    config: Optional[dict] = None,
    calibration: Optional[Input[Dataset]] = None,
    data_spec: Optional[dict] = None,
    module_file: str = "",
    champion: Optional[Input[Model]] = None,
):
    """Searches technique chains within the accuracy budget (`config`: a SearchConfig as a dict). `search_results`
    holds report.json, pareto.json, the trials table and search.db (rerun on the same folder to resume);
    `best_model` holds the winner's model.tflite and its recipe, and stays empty when no trial is within budget.
    With a `champion` folder holding model.tflite (from `fetch_champion`), every trial is also gated against it."""
    import json
    import os
    import shutil

    from edgeopt.components._shared.kfp_runtime import champion_file, training_data
    from edgeopt.components.search.config import SearchConfig
    from edgeopt.components.search.core import search
    from edgeopt.components.search.outputs import TRIALS_MD

    settings = SearchConfig.from_dict(config)
    data = training_data(examples.path, data_spec, module_file)
    result = search(
        model.path,
        settings,
        search_results.path,
        data=data,
        calibration_dir=calibration and calibration.path,
        champion_tflite=champion_file(champion and champion.path),
    )
    summary = result["search"]
    metrics.log_metric("trials", summary["trials"])
    metrics.log_metric("within_budget", sum(1 for c in result["candidates"] if c["gate"]["passed"]))
    search_results.metadata.update({"study_name": summary["study_name"], "winner": summary["winner"] or ""})
    os.makedirs(best_model.path, exist_ok=True)
    if summary["winner"]:
        winner = next(c for c in result["candidates"] if c["recipe"] == summary["winner"])
        shutil.copy2(winner["tflite_path"], os.path.join(best_model.path, "model.tflite"))
        with open(os.path.join(best_model.path, "edgeopt_recipe.json"), "w") as handle:
            json.dump(winner["config"], handle, indent=2)
        best_model.metadata.update(
            {"recipe": winner["recipe"], "model_format": "tflite", "edgeopt_config": winner["config"]}
        )
        for key in ("gzip_bytes", "tflite_bytes", "accuracy", "accuracy_drop", "gzip_ratio"):
            metrics.log_metric(f"winner_{key}", winner[key])
    with open(report.path, "w") as handle:
        handle.write(f"# edgeopt search: winner {summary['winner']}\n\n{summary['rule']}\n\n")
        with open(os.path.join(search_results.path, TRIALS_MD)) as trials:
            handle.write(trials.read())

"""Helpers the KFP component bodies call inside the container: map KFP artifact paths and parameters to the core.

No kfp import here: the bodies pass plain paths and dicts, so this stays testable and framework-free.
"""

import json

from edgeopt.components._shared.data import DataSpec, TrainingData, check_one_data_source, load_training_data
from edgeopt.components._shared.report_model import validate_candidate


def training_data(examples_path: str, data_spec: dict | None, module_file: str | None) -> TrainingData:
    """Exactly one of a data spec (as a dict, the YAML's content) or a module file/import name."""
    check_one_data_source(data_spec, module_file)
    if data_spec:
        return load_training_data(examples_path, data_spec=DataSpec.from_dict(data_spec))
    return load_training_data(examples_path, module_file=module_file)


def artifact_metadata(config, result: dict) -> dict:
    """What a KFP output artifact records: the config that made it and the step's numeric results."""
    metadata = {"edgeopt_config": json.loads(config.to_json())}
    metadata.update({key: value for key, value in result.items() if isinstance(value, (int, float, str, bool))})
    return metadata


def optimize_recipe_in_folder(model_path: str, recipe, output_dir: str, data: TrainingData, calibration_dir) -> dict:
    """Runs a recipe into output_dir/steps/ and puts the final model.tflite at output_dir's top.

    Returns the artifact metadata, the metrics to log and a Markdown summary.
    """
    import os

    from edgeopt.components.recipes.core import run_recipe_to_folder

    steps = run_recipe_to_folder(
        model_path, recipe, os.path.join(output_dir, "steps"), output_dir, data=data, calibration_dir=calibration_dir
    )
    conversion = steps[-1]["result"]
    metrics = {key: conversion[key] for key in ("tflite_bytes", "max_abs_diff", "top1_agreement")}
    rows = "\n".join(f"| {step['technique']} | {step['seconds']:.1f} |" for step in steps)
    markdown = (
        f"# {recipe.name}\n\n{recipe.description}\n\n| step | seconds |\n|---|---:|\n{rows}\n\n"
        f"model.tflite: {conversion['tflite_bytes']} bytes, max_abs_diff {conversion['max_abs_diff']:.3g}, "
        f"top-1 agreement {conversion['top1_agreement']:.3f}\n"
    )
    metadata = artifact_metadata(recipe, metrics) | {"recipe": recipe.name, "model_format": "tflite"}
    return {"metadata": metadata, "metrics": metrics, "markdown": markdown}


def champion_file(champion_dir: str | None) -> str | None:
    """champion/model.tflite from `fetch_champion`'s folder, or None: a pipeline's first run has no champion yet."""
    import os

    path = os.path.join(champion_dir, "model.tflite") if champion_dir else None
    return path if path and os.path.exists(path) else None


def evaluate_in_folder(candidate_dir, baseline_dir, data, gate, evaluation, candidate_metadata, champion_dir) -> dict:
    """The candidate's report.json record (plus a Markdown summary) from folders holding model.tflite; the champion
    folder counts only when it holds one (a pipeline's first run has no champion yet)."""
    import os

    from edgeopt.components.evaluation.core import evaluate_tflite, measure_candidate

    baseline = evaluate_tflite(os.path.join(baseline_dir, "model.tflite"), data, evaluation)
    candidate = evaluate_tflite(os.path.join(candidate_dir, "model.tflite"), data, evaluation)
    champion_tflite = champion_file(champion_dir)
    champion = evaluate_tflite(champion_tflite, data, evaluation) if champion_tflite else None
    conversion = {key: candidate_metadata.get(key) for key in ("max_abs_diff", "top1_agreement")}
    record = measure_candidate(candidate, baseline, gate, champion, conversion)
    config = candidate_metadata.get("edgeopt_config", {})
    record.update(
        recipe=candidate_metadata.get("recipe", "candidate"),
        steps=[step["technique"] for step in config.get("steps", [])],
        config=config,
        baseline=baseline.to_dict(),
    )
    verdict = "passed" if record["gate"]["passed"] else "failed: " + "; ".join(record["gate"]["reasons"])
    record["markdown"] = (
        f"# {record['recipe']}: gate {verdict}\n\n| | baseline | candidate |\n|---|---:|---:|\n"
        f"| bytes | {baseline.tflite_bytes} | {candidate.tflite_bytes} |\n"
        f"| gzip bytes | {baseline.gzip_bytes} | {candidate.gzip_bytes} |\n"
        f"| {baseline.metric['name']} | {baseline.metric['value']:.4f} | {candidate.metric['value']:.4f} |\n"
        f"| p50 ms | {baseline.latency_ms['p50']:.3f} | {candidate.latency_ms['p50']:.3f} |\n"
    )
    return validate_candidate(record)

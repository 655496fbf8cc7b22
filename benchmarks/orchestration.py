"""Benchmark helper: the same recipe through the core, a minimal TFX LocalDagRunner pipeline and kfp.local.

Every path does the same work on the same model and Examples: export and measure the float baseline, run the
recipe, measure the candidate against the baseline. What differs is what wraps it:
  core: `optimize()` in this process (also writes report.json/report.md and checks the input model's digest);
  tfx:  Importer(Examples) + Importer(Model) -> TFLiteExporter -> ModelOptimizer -> CompressionEvaluator, run by
        LocalDagRunner in this process (MLMD in SQLite, artifact publishing, executor launch per component);
  kfp:  dsl.importer x2 -> export_tflite -> optimize_recipe -> evaluate_and_gate through kfp.local's
        SubprocessRunner: each of the three steps is a fresh Python process that imports TensorFlow and edgeopt.
Imports of tfx and kfp are timed separately (once per process), not inside the paths' wall times.
"""

import json
import os
import shutil
import time
from pathlib import Path

from edgeopt.components._shared.data import DataSpec, load_training_data
from edgeopt.components.evaluation.config import EvaluationConfig
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.recipes.core import optimize


def run_core(model_dir: str, examples: str, spec: DataSpec, recipe: RecipeConfig, root: Path) -> dict:
    data = load_training_data(examples, data_spec=spec)
    started = time.perf_counter()
    report = optimize(model_dir, [recipe], root, data=data, evaluation=EvaluationConfig())
    seconds = time.perf_counter() - started
    candidate = report["candidates"][0]
    return {
        "seconds": seconds,
        "tflite_bytes": candidate["tflite_bytes"],
        "accuracy": candidate["accuracy"],
        "passed": candidate["gate"]["passed"],
    }


def run_tfx(model_dir: str, examples: str, spec: DataSpec, recipe: RecipeConfig, root: Path) -> dict:
    from tfx import v1 as tfx

    from edgeopt.components.evaluation.tfx_component import CompressionEvaluator
    from edgeopt.components.export.tfx_component import TFLiteExporter
    from edgeopt.components.recipes.tfx_component import ModelOptimizer

    started = time.perf_counter()
    splits = sorted(path.name.removeprefix("Split-") for path in Path(examples).glob("Split-*"))
    import_examples = tfx.dsl.Importer(
        source_uri=examples,
        artifact_type=tfx.types.standard_artifacts.Examples,
        properties={"split_names": json.dumps(splits)},
    ).with_id("ImportExamples")
    import_model = tfx.dsl.Importer(source_uri=model_dir, artifact_type=tfx.types.standard_artifacts.Model).with_id(
        "ImportModel"
    )
    example_channel, model_channel = import_examples.outputs["result"], import_model.outputs["result"]
    data_spec = spec.model_dump(mode="json")
    baseline = TFLiteExporter(model=model_channel, examples=example_channel, data_spec=data_spec).with_id(
        "BaselineExporter"
    )
    optimizer = ModelOptimizer(model=model_channel, examples=example_channel, config=recipe, data_spec=data_spec)
    evaluator = CompressionEvaluator(
        model=optimizer.outputs["output_model"],
        baseline_model=baseline.outputs["output_model"],
        examples=example_channel,
        gate=recipe.gate,
        evaluation=EvaluationConfig(),
        data_spec=data_spec,
    )
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="bench-orchestration",
        pipeline_root=str(root / "pipeline"),
        components=[import_examples, import_model, baseline, optimizer, evaluator],
        enable_cache=False,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(root / "metadata.sqlite")
        ),
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    seconds = time.perf_counter() - started
    tflites = sorted((root / "pipeline").glob("ModelOptimizer/output_model/*/Format-Serving/model.tflite"))
    if not tflites:
        raise RuntimeError(f"the TFX run wrote no ModelOptimizer model.tflite under {root}")
    return {"seconds": seconds, "tflite_bytes": tflites[-1].stat().st_size}


def build_kfp_pipeline():
    from kfp import dsl

    from edgeopt.components.evaluation.kfp_component import evaluate_and_gate
    from edgeopt.components.export.kfp_component import export_tflite
    from edgeopt.components.recipes.kfp_component import optimize_recipe

    @dsl.pipeline(name="bench-orchestration")
    def bench_pipeline(examples_uri: str, model_uri: str, recipe: str, data_spec: dict, evaluation_config: dict):
        examples = dsl.importer(artifact_uri=examples_uri, artifact_class=dsl.Dataset).output
        model = dsl.importer(artifact_uri=model_uri, artifact_class=dsl.Model).output
        baseline = export_tflite(model=model, examples=examples, data_spec=data_spec).outputs["tflite_model"]
        optimized = optimize_recipe(model=model, examples=examples, recipe=recipe, data_spec=data_spec).outputs[
            "optimized_model"
        ]
        evaluate_and_gate(
            candidate=optimized,
            baseline=baseline,
            examples=examples,
            data_spec=data_spec,
            evaluation_config=evaluation_config,
        )

    return bench_pipeline


def run_kfp(model_dir: str, examples: str, spec: DataSpec, recipe: RecipeConfig, root: Path) -> dict:
    from kfp import local

    pipeline = build_kfp_pipeline()
    started = time.perf_counter()
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "pipeline"))
    pipeline(
        examples_uri=examples,
        model_uri=model_dir,
        recipe=recipe.to_json(),
        data_spec=spec.model_dump(mode="json", exclude_none=True),
        evaluation_config=EvaluationConfig().model_dump(mode="json", exclude_none=True),
    )
    seconds = time.perf_counter() - started
    tflites = sorted((root / "pipeline").rglob("optimized_model/model.tflite"))
    if not tflites:
        raise RuntimeError(f"the kfp.local run wrote no optimized_model/model.tflite under {root}")
    return {"seconds": seconds, "tflite_bytes": tflites[-1].stat().st_size}


PATHS = {"core": run_core, "tfx": run_tfx, "kfp": run_kfp}


def time_imports() -> dict:
    """One-time import cost of each orchestrator's package in this process (0 when already imported)."""
    seconds = {}
    for name, statement in (("tfx", "from tfx import v1"), ("kfp", "import kfp.local")):
        started = time.perf_counter()
        exec(statement, {})  # noqa: S102  (a fixed import statement, timed)
        seconds[name] = time.perf_counter() - started
    return seconds


def compare_paths(
    model_dir: str, examples: str, spec: DataSpec, recipe: RecipeConfig, work: Path, *, repeats: int = 2
) -> dict:
    """Runs each path `repeats` times in rotating order; returns every timing and the medians."""
    imports = time_imports()
    rows = []
    names = list(PATHS)
    for repeat in range(repeats):
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in order:
            root = work / f"{name}-{repeat}"
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            result = PATHS[name](model_dir, examples, spec, recipe, root)
            rows.append({"path": name, "repeat": repeat, **result})
            print(f"[bench] orchestration {name} repeat {repeat}: {result['seconds']:.1f} s", flush=True)
    medians = {}
    for name in names:
        times = sorted(row["seconds"] for row in rows if row["path"] == name)
        medians[name] = times[len(times) // 2] if len(times) % 2 else sum(times[len(times) // 2 - 1 :][:2]) / 2
    return {"recipe": recipe.name, "repeats": repeats, "import_s": imports, "rows": rows, "median_s": medians,
            "cpu_count": os.cpu_count()}  # fmt: skip

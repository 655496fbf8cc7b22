"""Benchmark: what MLflow logging costs an optimize job, as a share of the job's wall time.

Not a test. Trains the digits demo CNN (284 k parameters, few epochs: accuracy does not matter here), then runs the
same optimize job inside a tracked job against three stores, timing each phase. The default recipes are the three
cheapest (PTQ: the shortest step, so the largest logging share); `--recipes all` runs the demo's twelve. Phases:
  start: `tracked_job.__enter__` (experiment + parent run; for a new SQLite file also MLflow's schema migrations),
  step:  `optimize()` itself (export, conversions, evaluation with the default 200 timed runs),
  log:   `log_report` (parent batch + artifacts + Pareto plot, one child run per candidate, registry version),
  end:   `__exit__` (ends the parent run).
Stores: the default local SQLite file in a fresh output folder each time (`sqlite-new`: MLflow creates its schema
first), the same in one reused output folder (`sqlite-reused`: a re-run; its first repeat creates the file), and an
`mlflow server` on SQLite on 127.0.0.1 (started here, stopped at the end). Importing mlflow is timed once,
separately. Usage:
  scripts/in-env python benchmarks/mlflow_logging_cost.py [--repeats 3] [--epochs 3] [--recipes all|NAME,NAME]
"""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "mlflow_logging_cost.json"
STORES = ("sqlite-new", "sqlite-reused", "server")
DEFAULT_RECIPES = "ptq_int8,ptq_fp16,ptq_dynamic"


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri",
               f"sqlite:///{root / 'server.db'}", "--artifacts-destination", str(root / "artifacts"),
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(root / "server.log", "wb")  # noqa: SIM115  (lives as long as the server)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(480):
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")


def timed_job(config, out: Path, model: Path, recipes, data, evaluation, examples) -> dict:
    from edgeopt.components.recipes.core import optimize
    from edgeopt.components.tracking.mlflow_tracking import tracked_job

    job = tracked_job(config, orchestrator="cli", output_dir=out, verbose=0)
    t0 = time.perf_counter()
    job.__enter__()
    t1 = time.perf_counter()
    report = optimize(model, recipes, out, data=data, evaluation=evaluation)
    t2 = time.perf_counter()
    job.log_report(report, examples=examples)
    t3 = time.perf_counter()
    job.__exit__(None, None, None)
    t4 = time.perf_counter()
    if job.offline:
        raise RuntimeError(f"tracking went offline: {job.offline_reason}")
    timing = {"start_s": t1 - t0, "step_s": t2 - t1, "log_s": t3 - t2, "end_s": t4 - t3, "total_s": t4 - t0}
    timing["logging_s"] = timing["start_s"] + timing["log_s"] + timing["end_s"]
    timing["share"] = timing["logging_s"] / timing["total_s"]
    return timing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="baseline training epochs (default 3)")
    parser.add_argument("--recipes", default=DEFAULT_RECIPES, help=f"'all' or names (default {DEFAULT_RECIPES})")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgeopt.components._shared.data import load_training_data
    from edgeopt.components.cli import default_recipe_paths, load_recipes
    from edgeopt.components.demo.digits import digits_data_spec, train_digits_baseline, write_digits_examples
    from edgeopt.components.evaluation.config import EvaluationConfig

    root = Path(tempfile.mkdtemp(prefix="edgeopt-mlflow-bench-"))
    examples = write_digits_examples(root / "examples")
    model = train_digits_baseline(examples, root / "model", epochs=args.epochs)
    data = load_training_data(examples, data_spec=digits_data_spec())
    wanted = None if args.recipes == "all" else set(args.recipes.split(","))
    recipes = load_recipes([path for path in default_recipe_paths() if wanted is None or path.stem in wanted])
    evaluation = EvaluationConfig()

    started = time.perf_counter()
    from edgeopt.components.tracking.config import TrackingConfig
    from edgeopt.components.tracking.mlflow_tracking import tracked_job  # noqa: F401  (the import being timed)

    import_s = time.perf_counter() - started

    server, url = start_server(root)
    rows = []
    try:
        for store in STORES:
            for repeat in range(args.repeats):
                out = root / (store if store == "sqlite-reused" else f"{store}-{repeat}")
                uri = url if store == "server" else None
                config = TrackingConfig(tracking_uri=uri, registered_model_name="bench")
                rows.append({"store": store, "repeat": repeat, **timed_job(config, out, model, recipes, data,
                                                                              evaluation, examples)})  # fmt: skip
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)

    print(f"import mlflow + adapter: {import_s:.2f} s (once per process)")
    print("| store | repeat | start s | step s | log s | end s | logging share |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['store']} | {row['repeat']} | {row['start_s']:.2f} | {row['step_s']:.2f} | {row['log_s']:.2f} "
              f"| {row['end_s']:.3f} | {100 * row['share']:.1f} % |")  # fmt: skip
    summary = {}
    for store in STORES:
        mine = [row for row in rows if row["store"] == store]
        summary[store] = {
            key: statistics.median(row[key] for row in mine) for key in mine[0] if key.endswith(("_s", "share"))
        }
        print(f"{store}: median logging {summary[store]['logging_s']:.2f} s of {summary[store]['total_s']:.2f} s "
              f"= {100 * summary[store]['share']:.1f} %")  # fmt: skip
    RESULTS.parent.mkdir(exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[args.recipes] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "recipes": [recipe.name for recipe in recipes], "repeats": args.repeats, "epochs": args.epochs,
        "import_s": import_s, "rows": rows, "median": summary,
    }  # fmt: skip
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Helpers of the reliability tests: run the CLI in this process (TensorFlow is loaded once) or as a real
subprocess (signals, locks), and read run statuses back from a job's SQLite tracking store."""

import os
import subprocess
import sys

import pytest

from edgeopt.components.recipes.config import RecipeConfig

DIGITS_SPEC = "configs/data/digits.yaml"
PTQ_DYNAMIC = "configs/recipes/ptq_dynamic.yaml"


@pytest.fixture
def cli(capsys):
    """Runs `edgeopt ARGS` in this process; returns (exit code, stdout, stderr)."""
    from edgeopt.components.cli import main

    def run(*args):
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def optimize_args(model, examples, out, *recipes, extra=()):
    args = ["optimize", "--model", model, "--examples", examples, "--data-spec", DIGITS_SPEC, "--out", out]
    for recipe in recipes or (PTQ_DYNAMIC,):
        args += ["--recipe", recipe]
    return [*args, "--timed-runs", 3, "--warmup-runs", 1, "--quiet", *extra]


def start_edgeopt(*args, **kwargs) -> subprocess.Popen:
    """`edgeopt ARGS` as a real process (its own signal handling, its own lock)."""
    return subprocess.Popen(
        [sys.executable, "-m", "edgeopt.components.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        **kwargs,
    )


def write_recipe(path, **fields):
    path.write_text(RecipeConfig(**fields).to_json())
    return path


def failing_recipe(path):
    """A recipe that fails fast in its first step: every prunable layer of the tiny CNN is skipped."""
    return write_recipe(
        path,
        name="prune_nothing",
        steps=[
            {"technique": "prune", "config": {"skip_layers": ["conv1", "conv2", "dense1", "logits"]}},
            {"technique": "quantize", "config": {"mode": "dynamic_range"}},
        ],
    )


def job_runs(out):
    """(status, tags) of every job (parent) run in OUT/mlflow.db, oldest first."""
    from edgeopt.components.tracking.store import open_client

    client = open_client(f"sqlite:///{out}/mlflow.db")  # under the store lock: a job may be creating it now
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string="tags.`edgeopt.run_kind` = 'job'",
        order_by=["attributes.start_time ASC"],
    )
    return [(run.info.status, run.data.tags) for run in runs]

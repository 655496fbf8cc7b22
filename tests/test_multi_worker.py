"""A two-worker MultiWorkerMirroredStrategy job on CPU over loopback: two `edgeopt optimize` processes, each with its
own TF_CONFIG (what a TFJob's replicas get), prune and QAT the tiny CNN together; only the chief publishes."""

import json
import os
import socket
import sqlite3
import subprocess

import pytest

from edgeopt.components.recipes.config import RecipeConfig
from tests.helpers import kernels, overall_sparsity

#: Seconds before a hung collective (a worker waiting for a peer that never comes) fails the test.
JOB_TIMEOUT = 300
TARGET_SPARSITY = 0.5
MAX_ACCURACY_DROP = 3.0


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("localhost", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def pqat_recipe(path):
    recipe = RecipeConfig(
        name="pqat_two_workers",
        steps=[
            {"technique": "prune", "config": {"target_sparsity": TARGET_SPARSITY, "epochs": 3, "learning_rate": 1e-3,
                                              "batch_size": 64, "distribution": "multi_worker"}},
            {"technique": "qat", "config": {"scheme": "prune_preserve", "epochs": 2, "learning_rate": 1e-3,
                                            "batch_size": 64}},  # auto: multi_worker, from TF_CONFIG
            {"technique": "quantize", "config": {"mode": "full_integer"}},
        ],
        gate={"max_accuracy_drop": MAX_ACCURACY_DROP},
    )  # fmt: skip
    path.write_text(recipe.to_json())
    return path


@pytest.mark.slow
def test_two_workers_prune_and_qat_together_and_only_the_chief_publishes(tiny_model, digits_examples, tmp_path):
    recipe = pqat_recipe(tmp_path / "pqat.json")
    tracking = tmp_path / "mlflow.db"
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    worker_tmp = tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    outs, processes = [tmp_path / "out-chief", tmp_path / "out-worker"], []
    for index, out in enumerate(outs):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        if index:
            env["TMPDIR"] = str(worker_tmp)  # where its private output goes: must be empty at the end
        command = [
            "edgeopt", "optimize", "--model", tiny_model, "--examples", digits_examples, "--data-spec",
            "configs/data/digits.yaml", "--recipe", recipe, "--out", out, "--tracking-uri", f"sqlite:///{tracking}",
            "--timed-runs", "5", "--warmup-runs", "1",
        ]  # fmt: skip
        processes.append(
            subprocess.Popen(
                list(map(str, command)), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    logs = []
    try:
        for process in processes:
            logs.append(process.communicate(timeout=JOB_TIMEOUT)[0])
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        pytest.fail(f"the two-worker job did not finish in {JOB_TIMEOUT} s (a hung collective?)")
    for index, process in enumerate(processes):
        assert process.returncode == 0, f"worker {index} exited {process.returncode}:\n{logs[index][-4000:]}"

    chief_out, worker_out = outs
    assert not worker_out.exists(), "the non-chief worker wrote into its --out"
    assert list(worker_tmp.iterdir()) == [], "the non-chief worker left its private output behind"
    assert f"wrote {worker_tmp}/edgeopt-worker-" in logs[1]  # it did run the whole job, privately

    report = json.loads((chief_out / "report.json").read_text())
    (candidate,) = report["candidates"]
    assert candidate["gate"]["passed"], candidate["gate"]
    assert candidate["accuracy_drop"] <= MAX_ACCURACY_DROP
    prune_step, qat_step, _ = candidate["step_records"]
    for step in (prune_step, qat_step):
        assert step["result"]["distribution"] == {
            "distribution": "multi_worker",
            "strategy": "MultiWorkerMirroredStrategy",
            "replicas": 2,
            "workers": 2,
        }
    assert prune_step["result"]["achieved_sparsity"] >= TARGET_SPARSITY - 0.02
    # PQAT kept the zeros through int8: the published .tflite holds them.
    assert overall_sparsity(kernels(candidate["tflite_path"], "INT8")) >= TARGET_SPARSITY - 0.05

    with sqlite3.connect(tracking) as database:  # one job logged: the chief's (a parent run and its candidate)
        parents = database.execute(
            "SELECT COUNT(*) FROM runs WHERE run_uuid NOT IN "
            "(SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId')"
        ).fetchone()[0]
    assert parents == 1

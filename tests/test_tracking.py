"""MLflow tracking on real stores, no mocks: the default SQLite file, `mlflow server` processes on SQLite and on
PostgreSQL, a server killed mid-job, and the `edgeopt promote|compare|sync|optimize` commands."""

import csv
import io
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow import MlflowClient

from edgeopt.components import __version__
from edgeopt.components._shared.errors import ConfigError
from edgeopt.components.evaluation.config import EvaluationConfig
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.recipes.core import optimize
from edgeopt.components.tracking import mlflow_tracking as tracking
from edgeopt.components.tracking import records
from edgeopt.components.tracking.config import TrackingConfig, default_tracking_uri
from edgeopt.components.tracking.tflite_flavor import TAG_TFLITE_SHA256, sha256_of

# Few tries and short waits: an outage test must not sit in retries.
FAST = {"max_attempts": 2, "backoff_seconds": 0.05, "http_request_timeout_seconds": 5}
MLFLOW = str(Path(sys.executable).with_name("mlflow"))
PG_BIN = Path("/usr/lib/postgresql/17/bin")
SERVER_START_TIMEOUT_S = 120

RECIPES = [
    RecipeConfig(name="int8", steps=[{"technique": "quantize", "config": {"mode": "full_integer"}}]),
    RecipeConfig(name="fp16", steps=[{"technique": "quantize", "config": {"mode": "float16"}}]),
    # float16 never matches float32 to 1e-9, so the conversion check rejects it: a candidate with "error".
    RecipeConfig(
        name="broken",
        steps=[{"technique": "quantize", "config": {"mode": "float16", "validation": {"max_abs_diff": 1e-9}}}],
    ),
]


@pytest.fixture(autouse=True)
def _short_http(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def job(tmp_path_factory, tiny_model, digits_data, digits_examples):
    """One real optimize report (two candidates and one failed recipe), logged to several stores by the tests."""
    out = tmp_path_factory.mktemp("job")
    evaluation = EvaluationConfig(timed_runs=5, warmup_runs=1)
    report = optimize(tiny_model, RECIPES, out, data=digits_data, evaluation=evaluation)
    assert [bool(c.get("error")) for c in report["candidates"]] == [False, False, True]
    assert records.best_candidate(report) is not None
    return SimpleNamespace(out=out, report=report, examples=digits_examples, model=tiny_model)


def log_job(job, config: TrackingConfig, output_dir=None):
    with tracking.tracked_job(config, orchestrator="cli", output_dir=output_dir or job.out, verbose=0) as tracked:
        tracked.log_report(job.report, examples=job.examples)
    assert not tracked.offline, tracked.offline_reason
    assert tracked.spooled_to is None
    return tracked


def child_runs(client: MlflowClient, parent_run_id: str):
    parent = client.get_run(parent_run_id)
    runs = client.search_runs([parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")
    return {run.data.tags[records.TAG_RECIPE]: run for run in runs}


def assert_job_logged(uri: str, parent_run_id: str, job, tmp_path: Path, orchestrator: str = "cli"):
    """The parent run and one child per candidate hold exactly what report.json says."""
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    report = job.report
    parent = client.get_run(parent_run_id)
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert tags[records.TAG_ORCHESTRATOR] == orchestrator
    assert tags[records.TAG_VERSION] == __version__
    assert tags[records.TAG_BASELINE_DIGEST] == report["baseline"]["model_digest"]
    assert tags[records.TAG_DATASET_FINGERPRINT] == records.dataset_fingerprint(job.examples)
    assert parent.data.metrics == records.job_metrics(report)
    assert parent.data.metrics["baseline.accuracy"] == report["baseline"]["accuracy"]
    parent_files = {item.path for item in client.list_artifacts(parent_run_id)}
    assert {"report.json", "report.md", "pareto.png"} <= parent_files

    children = child_runs(client, parent_run_id)
    assert sorted(children) == sorted(c["recipe"] for c in report["candidates"])
    for candidate in report["candidates"]:
        run = children[candidate["recipe"]]
        assert run.data.metrics == records.candidate_metrics(candidate)
        assert run.data.params == records.candidate_params(candidate)
        assert run.data.tags[records.TAG_TECHNIQUE_CHAIN] == "+".join(candidate["steps"])
        recipe_json = client.download_artifacts(run.info.run_id, "recipe.json", str(tmp_path / run.info.run_id))
        assert json.loads(Path(recipe_json).read_text()) == candidate["config"]
        if candidate.get("error"):
            assert run.info.status == "FAILED"
            assert run.data.tags[records.TAG_GATE] == "error"
            assert run.data.tags[records.TAG_FAILURE_REASON] == candidate["error"]
            continue
        assert run.info.status == "FINISHED"
        for name in records.CANDIDATE_METRICS:
            expected = candidate["latency_ms"][name.split("_")[1]] if name.startswith("latency_") else candidate[name]
            assert run.data.metrics[name] == expected, name
        assert run.data.tags[records.TAG_GATE] == ("passed" if candidate["gate"]["passed"] else "failed")
        model_dir = client.download_artifacts(run.info.run_id, "model", str(tmp_path / run.info.run_id))
        (tflite,) = Path(model_dir).rglob("*.tflite")  # an MLflow model folder (tflite_flavor.py)
        assert tflite.read_bytes() == Path(candidate["tflite_path"]).read_bytes()
    return client, children


def assert_challenger_is_best(client: MlflowClient, model: str, children: dict, report: dict):
    version = client.get_model_version_by_alias(model, tracking.CHALLENGER_ALIAS)
    assert version.run_id == children[records.best_candidate(report)["recipe"]].info.run_id
    return version


# --- Servers: real processes, each in its own process group (mlflow starts worker processes). ---


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MlflowServer:
    def __init__(self, backend_uri: str, artifacts: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job-runner helpers needed
        with open(log, "ab") as sink:
            self.process = subprocess.Popen(
                [MLFLOW, "server", "--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts),
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                pytest.fail(f"mlflow server exited with {self.process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.25)
        self.stop()
        pytest.fail(f"mlflow server not ready after {SERVER_START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")

    def kill(self):
        """SIGKILL to the whole group: the server dies the way a crashed host would, without a goodbye."""
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self):
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        self._signal_group(signal.SIGKILL)  # workers that outlived the main process
        self.process.wait(timeout=15)

    def _signal_group(self, signum):
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    server = MlflowServer(f"sqlite:///{root / 'db.sqlite'}", root / "artifacts", root / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postgres_uri():
    """A throwaway PostgreSQL 17 cluster (trust auth, fsync off) owned by the postgres user, on a free port."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL is not installed at {PG_BIN} (the rootfs environment of scripts/in-env has it)")
    owner = pwd.getpwnam("postgres")
    # Outside pytest's 0700 tmp tree, which the postgres user cannot enter.
    root = Path(tempfile.mkdtemp(prefix="edgeopt-pg-"))
    os.chown(root, owner.pw_uid, owner.pw_gid)
    data, port = root / "data", free_port()

    def as_postgres(*command):
        subprocess.run(["runuser", "-u", "postgres", "--", *map(str, command)], check=True, capture_output=True)

    as_postgres(PG_BIN / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync")
    options = f"-p {port} -k {data} -h 127.0.0.1 -c fsync=off"
    as_postgres(PG_BIN / "pg_ctl", "-D", data, "-l", root / "postgres.log", "-w", "-t", "60", "-o", options, "start")
    try:
        # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; the environment ships psycopg2-binary.
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        as_postgres(PG_BIN / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def edgeopt(*args, check=True):
    result = subprocess.run(["edgeopt", *map(str, args)], capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


# --- What gets logged: pure functions. ---


def test_params_are_the_flattened_config_and_deterministic():
    first, second = (records.flatten_params(recipe.to_dict()) for recipe in (RECIPES[0], RECIPES[0].model_copy()))
    assert first == second
    assert first["steps.0.config.mode"] == "full_integer"
    assert first["gate.max_accuracy_drop"] == "1.0" and first["gate.min_size_ratio"] == "null"
    assert records.flatten_params({"a": [], "b": {}, "c": [1, {"d": True}]}) == {
        "a": "[]",
        "b": "{}",
        "c.0": "1",
        "c.1.d": "true",
    }


def test_best_candidate_is_most_accurate_passing_then_smallest():
    def candidate(name, accuracy, gzip_bytes, passed=True):
        return {"recipe": name, "accuracy": accuracy, "gzip_bytes": gzip_bytes, "gate": {"passed": passed}}

    report = {
        "candidates": [
            candidate("big", 0.95, 900),
            candidate("small", 0.95, 500),
            candidate("better_but_gated", 0.99, 100, passed=False),
            {**candidate("broken", None, None, passed=False), "error": "ConversionError: x"},
        ]
    }
    assert records.best_candidate(report)["recipe"] == "small"
    assert records.best_candidate({"candidates": report["candidates"][2:]}) is None


def test_dataset_fingerprint_follows_file_names_and_sizes(tmp_path):
    (tmp_path / "Split-train").mkdir()
    (tmp_path / "Split-train" / "data.gz").write_bytes(b"12345")
    before = records.dataset_fingerprint(tmp_path)
    assert records.dataset_fingerprint(tmp_path) == before
    (tmp_path / "Split-train" / "data.gz").write_bytes(b"123456")
    assert records.dataset_fingerprint(tmp_path) != before


def test_job_records_carry_the_calibration_sample(job):
    calibration = {"source": "calibration artifact", "count": 300, "data_sha256": "ab" * 32, "per_class": {"0": 299}}
    report = {**job.report, "calibration": calibration}
    metrics = records.job_metrics(report)
    assert metrics["calibration.count"] == 300 and metrics["calibration.per_class.0"] == 299
    assert records.job_tags(report)[records.TAG_CALIBRATION_DIGEST] == "ab" * 32


def test_tracking_config_rejects_bad_values_naming_the_field():
    with pytest.raises(ConfigError, match="TrackingConfig.max_attempts"):
        TrackingConfig(max_attempts=0)
    with pytest.raises(ConfigError, match="TrackingConfig.experiment_nmae: unknown field"):
        TrackingConfig(experiment_nmae="x")


# --- Real stores. ---


def test_default_sqlite_store_holds_parent_children_and_registry(job, tmp_path):
    tracked = log_job(job, TrackingConfig(registered_model_name="tiny-local", **FAST))
    uri = default_tracking_uri(job.out)
    assert uri == f"sqlite:///{job.out.resolve()}/mlflow.db" and (job.out / "mlflow.db").is_file()
    client, children = assert_job_logged(uri, tracked.parent_run_id, job, tmp_path)
    assert (job.out / "mlartifacts").is_dir()  # artifacts beside the database, not in the current folder
    version = assert_challenger_is_best(client, "tiny-local", children, job.report)
    assert tracked.challenger_version == str(version.version)
    assert client.get_run(tracked.parent_run_id).data.tags[records.TAG_CHALLENGER_VERSION] == str(version.version)

    assert tracking.download_champion_tflite("tiny-local", tmp_path / "none", tracking_uri=uri) is None
    assert tracking.promote_challenger("tiny-local", tracking_uri=uri) == (None, str(version.version))
    champion = tracking.download_champion_tflite("tiny-local", tmp_path / "champion", tracking_uri=uri)
    best = records.best_candidate(job.report)
    assert champion.version == str(version.version)
    assert champion.path.read_bytes() == Path(best["tflite_path"]).read_bytes()


def test_exception_inside_the_job_ends_the_parent_failed_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="step exploded"):
        with tracking.tracked_job(TrackingConfig(**FAST), orchestrator="kfp", output_dir=tmp_path, verbose=0) as t:
            raise ValueError("step exploded")
    client = MlflowClient(default_tracking_uri(tmp_path), default_tracking_uri(tmp_path))
    run = client.get_run(t.parent_run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags[records.TAG_FAILURE_REASON] == "ValueError: step exploded"
    assert run.data.tags[records.TAG_ORCHESTRATOR] == "kfp"
    assert not client.search_runs([run.info.experiment_id], "attributes.status = 'RUNNING'")


@pytest.mark.slow
def test_server_on_sqlite_promote_and_compare_from_the_cli(job, sqlite_server, tmp_path):
    config = TrackingConfig(
        tracking_uri=sqlite_server.url, experiment_name="server", registered_model_name="tiny-server", **FAST
    )
    first = log_job(job, config)
    client, children = assert_job_logged(sqlite_server.url, first.parent_run_id, job, tmp_path)
    challenger = assert_challenger_is_best(client, "tiny-server", children, job.report)

    promoted = edgeopt("promote", "--model", "tiny-server", "--tracking-uri", sqlite_server.url)
    assert f"-> {challenger.version}" in promoted.stdout
    assert str(client.get_model_version_by_alias("tiny-server", "champion").version) == str(challenger.version)
    refused = edgeopt("promote", "--model", "no-such-model", "--tracking-uri", sqlite_server.url, check=False)
    assert refused.returncode == 2 and "no 'challenger'" in refused.stderr

    second = log_job(job, config)  # a second job: compare spans runs of the experiment
    table = edgeopt("compare", "--experiment", "server", "--tracking-uri", sqlite_server.url, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert {row["job"] for row in rows} == {first.parent_run_id, second.parent_run_id}
    assert len(rows) == 2 * len(job.report["candidates"])
    ratios = [float(row["gzip_ratio"]) for row in rows if row["gzip_ratio"]]
    assert ratios == sorted(ratios, reverse=True) and len(ratios) == 4
    assert [row["recipe"] for row in rows[-2:]] == ["broken", "broken"]  # no metric: last

    markdown = edgeopt(
        "compare", "--experiment", "server", "--tracking-uri", sqlite_server.url, "--metric", "latency_p50_ms"
    ).stdout.splitlines()
    assert markdown[0].startswith("| job | started (UTC) | recipe | steps | gate | latency_p50_ms |")
    latencies = [float(line.split("|")[6]) for line in markdown[2:] if "| broken |" not in line]
    assert latencies == sorted(latencies) and len(latencies) == 4


@pytest.mark.slow
def test_server_on_postgresql(job, postgres_uri, tmp_path):
    server = MlflowServer(postgres_uri, tmp_path / "artifacts", tmp_path / "server.log")
    try:
        config = TrackingConfig(tracking_uri=server.url, registered_model_name="tiny-pg", **FAST)
        tracked = log_job(job, config)
        client, children = assert_job_logged(server.url, tracked.parent_run_id, job, tmp_path)
        assert_challenger_is_best(client, "tiny-pg", children, job.report)
    finally:
        server.stop()


@pytest.mark.slow
def test_server_dying_mid_job_spools_and_sync_completes_the_same_runs(job, tmp_path):
    backend, artifacts = f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "artifacts"
    server = MlflowServer(backend, artifacts, tmp_path / "first.log")
    spool = tmp_path / "spool"
    config = TrackingConfig(tracking_uri=server.url, registered_model_name="tiny-outage", spool_dir=str(spool), **FAST)
    started = time.monotonic()
    with tracking.tracked_job(config, orchestrator="cli", output_dir=job.out, verbose=0) as tracked:
        assert tracked.parent_run_id and not tracked.offline  # the parent run exists on the server
        server.kill()
        tracked.log_report(job.report, examples=job.examples)
        assert tracked.offline
    assert time.monotonic() - started < 30  # bounded retries, no multi-minute HTTP backoff
    assert (tracked.spooled_to / tracking.SPOOL_RECORD).is_file()

    restarted = MlflowServer(backend, artifacts, tmp_path / "second.log")
    try:
        client = MlflowClient(restarted.url, restarted.url)
        assert client.get_run(tracked.parent_run_id).info.status == "RUNNING"  # until the sync completes it
        synced = edgeopt("sync", "--spool", spool, "--tracking-uri", restarted.url)
        assert f"synced job {tracked.job_id} (parent run {tracked.parent_run_id})" in synced.stdout
        assert not tracked.spooled_to.exists()
        client, children = assert_job_logged(restarted.url, tracked.parent_run_id, job, tmp_path)
        experiment = client.get_run(tracked.parent_run_id).info.experiment_id
        parents = client.search_runs([experiment], f"tags.`{records.TAG_JOB_ID}` = '{tracked.job_id}'")
        assert len(parents) == 1 + len(job.report["candidates"])  # completed, not duplicated
        assert_challenger_is_best(client, "tiny-outage", children, job.report)
        assert "nothing to sync" in edgeopt("sync", "--spool", spool, "--tracking-uri", restarted.url).stdout
    finally:
        restarted.stop()


@pytest.mark.slow
def test_server_unreachable_at_start_job_runs_and_sync_uploads_elsewhere(job, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    spool = tmp_path / "spool"
    config = TrackingConfig(tracking_uri=dead, spool_dir=str(spool), registered_model_name="tiny-later", **FAST)
    with tracking.tracked_job(config, orchestrator="tfx", output_dir=job.out, verbose=0) as tracked:
        assert tracked.offline and tracked.parent_run_id is None
        assert tracked.champion_tflite() is None
        tracked.log_report(job.report, examples=job.examples)
    assert tracked.spooled_to.parent == spool

    target = f"sqlite:///{tmp_path / 'later.db'}"
    (result,) = tracking.sync_spool(spool, tracking_uri=target, config=TrackingConfig(**FAST), verbose=0)
    assert result["synced"], result["error"]
    client, children = assert_job_logged(target, result["parent_run_id"], job, tmp_path, orchestrator="tfx")
    assert_challenger_is_best(client, "tiny-later", children, job.report)
    assert (tmp_path / "mlartifacts").is_dir()


@pytest.mark.slow
def test_cli_optimize_gates_against_the_champion_and_registers_a_challenger(job, tmp_path):
    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    log_job(job, TrackingConfig(tracking_uri=store, registered_model_name="tiny-cli", **FAST))
    _, champion_version = tracking.promote_challenger("tiny-cli", tracking_uri=store)
    recipes = []
    for recipe in RECIPES[:2]:
        recipes += ["--recipe", tmp_path / f"{recipe.name}.json"]
        (tmp_path / f"{recipe.name}.json").write_text(recipe.to_json())
    out = tmp_path / "out"
    edgeopt(
        "optimize", "--model", job.model, "--examples", job.examples, "--data-spec", "configs/data/digits.yaml",
        *recipes, "--out", out, "--timed-runs", 5, "--warmup-runs", 1,
        "--tracking-uri", store, "--experiment", "cli", "--register-model", "tiny-cli",
    )  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert "champion" in report  # measured in the same run
    client = MlflowClient(store, store)
    (parent,) = client.search_runs(
        [client.get_experiment_by_name("cli").experiment_id], f"tags.`{records.TAG_RUN_KIND}` = 'job'"
    )
    assert parent.data.tags[records.TAG_CHAMPION_VERSION] == champion_version
    assert parent.data.tags[records.TAG_ORCHESTRATOR] == "cli"
    cli_job = SimpleNamespace(report=report, examples=job.examples)
    _, children = assert_job_logged(store, parent.info.run_id, cli_job, tmp_path)
    # The same recipes on the same model: the best ties with the champion, which a zero-drop gate accepts. A
    # byte-identical .tflite adds no version: the champion's version also becomes the challenger.
    champion = client.get_model_version("tiny-cli", champion_version)
    if champion.tags[TAG_TFLITE_SHA256] == sha256_of(records.best_candidate(report)["tflite_path"]):
        assert str(client.get_model_version_by_alias("tiny-cli", "challenger").version) == str(champion_version)
    else:
        challenger = assert_challenger_is_best(client, "tiny-cli", children, report)
        assert int(challenger.version) == int(champion_version) + 1

    # --no-tracking: a job that fails early (no such model) leaves no MLflow store and no spool behind.
    untracked = tmp_path / "untracked"
    refused = edgeopt(
        "optimize", "--model", tmp_path / "missing", "--examples", job.examples, "--data-spec",
        "configs/data/digits.yaml", "--recipe", tmp_path / "int8.json", "--out", untracked, "--no-tracking",
        check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "missing" in refused.stderr
    assert not (untracked / "mlflow.db").exists() and not (untracked / "mlflow-spool").exists()

"""Every run ends with a final status: SIGTERM ends the job's run KILLED (exit 143), and the next job into the same
--out closes the run a SIGKILLed job left RUNNING (issue 12.5)."""

import os
import signal
import time

import pytest

from edgeopt.components._shared.errors import JobTerminatedError
from edgeopt.components._shared.model_io import model_digest
from edgeopt.components._shared.signals import EXIT_SIGTERM, sigterm_raises
from tests.reliability.conftest import PTQ_DYNAMIC, job_runs, optimize_args, start_edgeopt, write_recipe


def _slow_recipe(path):
    return write_recipe(
        path,
        name="slow_prune",
        steps=[
            {"technique": "prune", "config": {"epochs": 300, "batch_size": 8}},
            {"technique": "quantize", "config": {"mode": "dynamic_range"}},
        ],
    )


def _wait_for_running_runs(out, count: int, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (out / "mlflow.db").exists():
            running = [tags for status, tags in job_runs(out) if status == "RUNNING"]
            if len(running) >= count:
                return
        time.sleep(1)
    raise AssertionError(f"no RUNNING job run in {out} after {timeout} s")


@pytest.mark.slow
def test_sigterm_ends_the_run_killed_and_the_next_job_closes_a_sigkilled_run(tiny_model, digits_examples, tmp_path):
    digest = model_digest(tiny_model)
    out = tmp_path / "out"
    slow = _slow_recipe(tmp_path / "slow.json")

    terminated = start_edgeopt(*optimize_args(tiny_model, digits_examples, out, slow))
    _wait_for_running_runs(out, 1)
    time.sleep(3)  # into the baseline export or the fine-tuning
    terminated.send_signal(signal.SIGTERM)
    assert terminated.wait(timeout=120) == EXIT_SIGTERM, terminated.stderr.read()[-3000:]
    assert "received SIGTERM" in terminated.stderr.read()
    ((status, tags),) = job_runs(out)
    assert status == "KILLED" and "received SIGTERM" in tags["edgeopt.failure_reason"]
    assert not (out / "report.json").exists()

    killed = start_edgeopt(*optimize_args(tiny_model, digits_examples, out, slow))
    _wait_for_running_runs(out, 1)
    killed.kill()
    killed.wait(timeout=60)
    assert [status for status, _ in job_runs(out)] == ["KILLED", "RUNNING"]  # SIGKILL cannot end its own run

    rerun = start_edgeopt(*optimize_args(tiny_model, digits_examples, out, PTQ_DYNAMIC))
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read()[-3000:]
    (_, first), (orphan_status, orphan_tags), (last_status, _) = job_runs(out)
    assert orphan_status == "KILLED" and orphan_tags["edgeopt.failure_reason"].startswith("orphaned:")
    assert last_status == "FINISHED"
    assert model_digest(tiny_model) == digest


def test_a_retry_with_the_same_orchestrator_run_id_closes_the_earlier_attempt(tmp_path):
    from edgeopt.components.tracking.config import TrackingConfig
    from edgeopt.components.tracking.mlflow_tracking import tracked_job

    config = TrackingConfig(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", experiment_name="retries")
    crashed = tracked_job(config, orchestrator="kfp", output_dir=tmp_path / "attempt1", orchestrator_run_id="run-7")
    crashed.__enter__()  # the pod died here: its parent run was created and never ended
    crashed._signals.__exit__(None, None, None)  # and its signal handlers died with it (they are process-wide)
    with tracked_job(config, orchestrator="kfp", output_dir=tmp_path / "attempt2", orchestrator_run_id="run-7") as job:
        assert job.closed_orphans == [crashed.parent_run_id]
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=config.tracking_uri)
    orphan = client.get_run(crashed.parent_run_id)
    assert orphan.info.status == "KILLED" and orphan.data.tags["edgeopt.failure_reason"].startswith("orphaned:")
    assert client.get_run(job.parent_run_id).info.status == "FINISHED"


def test_only_the_first_sigterm_interrupts_so_cleanup_can_finish():
    before = signal.getsignal(signal.SIGTERM)
    cleaned = False
    with pytest.raises(JobTerminatedError, match="received SIGTERM"), sigterm_raises():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler raises here
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # a repeated SIGTERM during cleanup is logged, not raised
            time.sleep(0.1)
            cleaned = True
    assert cleaned
    assert signal.getsignal(signal.SIGTERM) is before  # the caller's handler is back


class _SigtermInFinalizer:
    """Receives SIGTERM while being garbage-collected, where Python swallows any exception (as it did inside
    SQLAlchemy's weakref callback in a real job)."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)  # the handler raises in here, and the exception is ignored


def test_a_sigterm_swallowed_in_a_finalizer_is_delivered_again():
    finished = False
    with pytest.raises(JobTerminatedError, match="received SIGTERM"), sigterm_raises():
        _SigtermInFinalizer()  # collected at once
        time.sleep(3)  # the redelivered signal raises here
        finished = True
    assert not finished


def test_sigterm_inside_a_tracked_job_of_any_face_ends_its_run_killed(tmp_path):
    from mlflow import MlflowClient

    from edgeopt.components.tracking.config import TrackingConfig
    from edgeopt.components.tracking.mlflow_tracking import tracked_job

    config = TrackingConfig(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", experiment_name="pods")
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(JobTerminatedError):
        with tracked_job(config, orchestrator="kfp", output_dir=tmp_path / "work", orchestrator_run_id="pod-1") as job:
            os.kill(os.getpid(), signal.SIGTERM)  # what Kubernetes sends a pod
            time.sleep(5)
    run = MlflowClient(tracking_uri=config.tracking_uri).get_run(job.parent_run_id)
    assert run.info.status == "KILLED" and "received SIGTERM" in run.data.tags["edgeopt.failure_reason"]
    assert signal.getsignal(signal.SIGTERM) is before

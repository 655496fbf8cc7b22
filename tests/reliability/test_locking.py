"""One job per output folder, and a SQLite store created and migrated under a lock: concurrent processes never
corrupt it (issue 12.4)."""

import subprocess
import sys

import pytest

from edgeopt.components._shared.errors import JobLockedError
from edgeopt.components._shared.job_lock import LOCK_FILE, output_dir_lock
from tests.reliability.lock_entry import EXIT_LOCKED

ENTRY = [sys.executable, "-m", "tests.reliability.lock_entry"]


def _start_three(outs, store, hold):
    return [
        subprocess.Popen([*ENTRY, str(out), str(store), str(hold)], stderr=subprocess.PIPE, text=True) for out in outs
    ]


def _finished_runs(store):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("locking")
    return [run.info.status for run in client.search_runs([experiment.experiment_id])]


@pytest.mark.slow
def test_three_jobs_on_one_out_one_runs_the_others_get_the_lock_error(tmp_path):
    out = tmp_path / "out"
    jobs = _start_three([out] * 3, out / "mlflow.db", hold=1)
    results = [(job.wait(timeout=120), job.stderr.read()) for job in jobs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, EXIT_LOCKED, EXIT_LOCKED], results
    for code, stderr in results:
        if code == EXIT_LOCKED:
            assert "is in use by another edgeopt job (pid " in stderr and "pass another --out" in stderr
    assert _finished_runs(out / "mlflow.db") == ["FINISHED"]  # the store opens fine afterwards
    assert (out / LOCK_FILE).read_text() == ""  # released: no holder left behind


@pytest.mark.slow
def test_three_jobs_racing_a_new_store_all_succeed(tmp_path):
    store = tmp_path / "shared" / "mlflow.db"
    store.parent.mkdir()
    jobs = _start_three([tmp_path / f"out{index}" for index in range(3)], store, hold=0)
    results = [(job.wait(timeout=120), job.stderr.read()) for job in jobs]
    assert [code for code, _ in results] == [0, 0, 0], results
    assert _finished_runs(store) == ["FINISHED"] * 3


def test_the_lock_names_its_holder_and_is_released(tmp_path):
    with output_dir_lock(tmp_path / "out"):
        with pytest.raises(JobLockedError, match=r"in use by another edgeopt job \(pid \d+ on "):
            with output_dir_lock(tmp_path / "out"):
                pass
    with output_dir_lock(tmp_path / "out"):  # free again once the first holder left
        pass

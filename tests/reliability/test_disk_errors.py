"""A full disk or a permission error while writing outputs ends the job with a typed error naming the path and the
errno, ends its run FAILED, and publishes no truncated file (issue 12.5). The disk is filled by simulation: the
write of report.json raises ENOSPC, as the kernel does."""

import errno
import os

import pytest

from edgeopt.components._shared.atomic import atomic_output_file
from edgeopt.components._shared.errors import OutputError
from edgeopt.components._shared.job_lock import output_errors_as_typed
from tests.reliability.conftest import job_runs, optimize_args


def _disk_full(path):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_a_full_disk_ends_the_run_failed_with_path_and_errno(cli, tiny_model, digits_examples, tmp_path, monkeypatch):
    import edgeopt.components.recipes.core as recipes_core

    out = tmp_path / "out"
    monkeypatch.setattr(recipes_core, "write_report", lambda report, output_dir: _disk_full(output_dir / "report.json"))
    code, _, err = cli(*optimize_args(tiny_model, digits_examples, out))
    assert code == 2
    assert f"cannot write {out / 'report.json'}: [Errno {errno.ENOSPC}]" in err and "free disk space" in err
    assert "Traceback" not in err
    ((status, tags),) = job_runs(out)
    assert status == "FAILED" and f"[Errno {errno.ENOSPC}]" in tags["edgeopt.failure_reason"]
    assert not (out / "report.json").exists()


def test_an_interrupted_write_publishes_nothing(tmp_path):
    final = tmp_path / "model.tflite"
    with pytest.raises(OutputError, match=r"\[Errno 28\].*no partial file was published"), output_errors_as_typed():
        with atomic_output_file(final) as staging:
            staging.write_bytes(b"\0" * 48 * 1024)  # half a model, then the disk is full
            _disk_full(final)
    assert list(tmp_path.iterdir()) == []

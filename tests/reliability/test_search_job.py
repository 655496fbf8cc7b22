"""`edgeopt search` lives like `optimize`: everything it reads is validated before --out exists, it refuses a
multi-worker cluster it cannot run in step, and it holds the output folder's lock while it runs."""

import json

import pytest

from tests.reliability.test_input_validation import _broken_examples


def _search_args(model, examples, out, *extra):
    return ["search", "--model", model, "--examples", examples, "--data-spec", "configs/data/digits.yaml",
            "--family", "ptq", "--trials", "1", "--timed-runs", "2", "--warmup-runs", "1", "--no-tracking",
            "--out", out, *extra]  # fmt: skip


def test_a_broken_split_fails_the_search_before_anything_is_created(cli, tiny_model, digits_examples, tmp_path):
    examples = _broken_examples(digits_examples, tmp_path, "truncated")
    out = tmp_path / "out"
    code, _, err = cli(*_search_args(tiny_model, examples, out))
    assert code == 2 and "train" in err and "Traceback" not in err
    assert not out.exists()  # no study, no baseline


def test_a_bad_budget_or_a_missing_model_is_named_before_anything_is_created(
    cli, tiny_model, digits_examples, tmp_path
):
    out = tmp_path / "out"
    code, _, err = cli(*_search_args(tiny_model, digits_examples, out, "--budget", "max_size=3"))
    assert code == 2 and "max_accuracy_drop=1.0" in err
    code, _, err = cli(*_search_args(tmp_path / "no_model", digits_examples, out))
    assert code == 2 and "no_model" in err and "Traceback" not in err
    assert not out.exists()


def test_a_multi_worker_cluster_is_refused_with_the_way_out(cli, tiny_model, digits_examples, tmp_path, monkeypatch):
    cluster = {"worker": ["localhost:12345", "localhost:12346"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    out = tmp_path / "out"
    code, _, err = cli(*_search_args(tiny_model, digits_examples, out))
    assert code == 2 and "multi-worker cluster" in err and "without TF_CONFIG" in err
    assert not out.exists()


@pytest.mark.slow
def test_a_search_holds_the_output_lock(cli, tiny_model, digits_examples, tmp_path):
    from edgeopt.components._shared.job_lock import output_dir_lock

    out = tmp_path / "out"
    out.mkdir()
    with output_dir_lock(out):  # another job holds --out
        code, _, err = cli(*_search_args(tiny_model, digits_examples, out))
    assert code == 2 and "is in use by another edgeopt" in err and "pass another --out" in err
    assert not (out / "search.db").exists()
    code, stdout, _ = cli(*_search_args(tiny_model, digits_examples, out, "--budget", "max_accuracy_drop=100"))
    assert code == 0 and "winner trial_0000" in stdout
    assert json.loads((out / "report.json").read_text())["search"]["trials"] == 1

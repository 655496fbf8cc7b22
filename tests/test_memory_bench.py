"""The memory benchmark's pieces at a tiny scale: the synthetic sharded Examples read back through a data spec, and
the peak RSS of a child process, which must be the child's own and not its parent's."""

import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def memory_data():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import memory_data

        yield memory_data
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_synthetic_examples_are_sharded_seeded_and_parse_as_images(memory_data, tmp_path):
    from edgeopt.components._shared.data import load_training_data
    from edgeopt.components._shared.data_spec import DataSpec

    folder = memory_data.write_examples(tmp_path / "a", 500, eval_examples=60, shards=8)
    assert len(list((folder / "Split-train").iterdir())) == 8
    assert len(list((folder / "Split-eval").iterdir())) == 4
    data = load_training_data(folder, data_spec=DataSpec.from_dict(memory_data.data_spec_dict()))
    assert data.split_size("train") == 500
    inputs, labels = data.take("eval", 1000)
    assert inputs.shape == (60, 32, 32, 3) and inputs.dtype == np.float32
    assert 0.0 <= inputs.min() and inputs.max() <= 1.0 and inputs.std() > 0.1
    assert set(labels.tolist()) <= set(range(10)) and len(set(labels.tolist())) > 5
    again = memory_data.write_examples(tmp_path / "b", 500, eval_examples=60, shards=8)
    first = sorted((folder / "Split-train").iterdir())
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in sorted((again / "Split-train").iterdir())]


def test_peak_rss_is_the_childs_own(memory_data, tmp_path):
    holder = np.ones(300 * 2**20 // 8)  # this process holds 300 MB more than a bare interpreter
    small = memory_data.run_measured([sys.executable, "-c", "print('hello')"], tmp_path / "small.log")
    command = [sys.executable, "-c", "import numpy, sys; numpy.ones(200 * 2**20 // 8).sum(); sys.exit(3)"]
    large = memory_data.run_measured(command, tmp_path / "large.log")
    assert small["returncode"] == 0 and (tmp_path / "small.log").read_text() == "hello\n"
    assert 0 < small["peak_rss_mb"] < 100 < holder.nbytes / 2**20
    assert large["returncode"] == 3
    assert large["peak_rss_mb"] > small["peak_rss_mb"] + 190

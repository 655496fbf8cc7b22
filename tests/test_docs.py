"""Docs stay true: config tables are generated from the schemas, and the README's Python example runs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt.components.docs import README_CONFIGS, update_readme

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("folder", sorted(README_CONFIGS))
def test_config_table_in_readme_is_current(folder):
    assert update_readme(folder, write=False), f"run `make docs` to refresh components/{folder}/README.md"


def test_every_technique_folder_has_a_readme():
    folders = [p for p in (ROOT / "components").iterdir() if p.is_dir() and (p / "config.py").exists()]
    assert len(folders) >= 6
    assert all((folder / "README.md").exists() for folder in folders)


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- tested-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md lost its tested example"
    return match.group(1)


@pytest.mark.slow
def test_readme_library_example_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", readme_example()], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ptq_int8" in result.stdout and (tmp_path / "out" / "report.json").exists()

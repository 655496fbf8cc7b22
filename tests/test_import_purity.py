"""The core imports no orchestrator or tracker: checked statically (every import statement) and at run time."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

COMPONENTS = Path(__file__).resolve().parents[1] / "components"
FORBIDDEN = ("tfx", "kfp", "mlflow")
# Faces and adapters are the only places allowed to import their framework.
FACE_FILES = ("tfx_component.py", "tfx_executor.py", "kfp_component.py", "mlflow_tracking.py")
CORE_FILES = sorted(
    path for path in COMPONENTS.rglob("*.py") if path.name not in FACE_FILES and "tracking" not in path.parts
)


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_core_has_files_to_check():
    assert len(CORE_FILES) > 15


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(COMPONENTS)))
def test_core_file_imports_no_orchestrator(path):
    assert imported_roots(path).isdisjoint(FORBIDDEN)


def test_importing_every_core_module_loads_no_orchestrator():
    modules = [
        "edgeopt.components." + ".".join(path.relative_to(COMPONENTS).with_suffix("").parts).removesuffix(".__init__")
        for path in CORE_FILES
        if path.name != "__init__.py"
    ]
    program = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "from edgeopt.components._shared.keras_bootstrap import tfmot\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"

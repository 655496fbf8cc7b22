"""Console output: native library noise goes to a side file, edgeopt's own lines reach the terminal, and progress
is one plain line per recipe where no terminal watches."""

import subprocess
import sys
import textwrap

import pytest


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)


def test_native_writes_to_fd2_go_to_the_side_file_and_python_logs_to_the_terminal(tmp_path):
    side = tmp_path / "native.log"
    done = _run(f"""
        import logging, os, subprocess, sys, warnings
        from edgeopt.components._shared.console import configure_logging, native_output_to
        configure_logging(0)
        with native_output_to({str(side)!r}):
            os.write(2, b"fully_quantize: 0, inference_type: 6\\n")
            subprocess.run(["sh", "-c", "echo child noise >&2"], check=True)
            logging.getLogger("edgeopt.components.recipes.core").info("recipe 1/2 ptq_int8")
            warnings.warn("Statistics for quantized inputs were expected, but not specified")
            logging.getLogger("tensorflow").warning("Gradients do not exist for variables")
        os.write(2, b"after the block\\n")
    """)
    assert done.returncode == 0, done.stderr
    assert "recipe 1/2 ptq_int8" in done.stderr
    assert "after the block" in done.stderr
    for noise in ("fully_quantize", "child noise", "Statistics for quantized", "Gradients do not exist"):
        assert noise not in done.stderr
    captured = side.read_text()
    assert "fully_quantize: 0" in captured and "child noise" in captured


def test_verbose_shows_library_loggers_and_keras_epochs():
    done = _run("""
        import logging
        from edgeopt.components._shared.console import configure_logging, keras_verbosity
        configure_logging(1)
        logging.getLogger("tensorflow").warning("Gradients do not exist for variables")
        logging.getLogger("edgeopt.x").debug("debug detail")
        print(keras_verbosity())
    """)
    assert "Gradients do not exist" in done.stderr
    assert "debug detail" in done.stderr
    assert done.stdout.strip() == "2"


def test_quiet_hides_progress_but_not_warnings():
    done = _run("""
        import logging
        from edgeopt.components._shared.console import configure_logging
        configure_logging(-1)
        logging.getLogger("edgeopt.x").info("recipe 1/2")
        logging.getLogger("edgeopt.x").warning("calibration used 5 examples")
    """)
    assert "recipe 1/2" not in done.stderr
    assert "calibration used 5 examples" in done.stderr


def test_non_interactive_progress_is_one_line_per_recipe():
    done = _run("""
        from edgeopt.components._shared.console import configure_logging, keras_verbosity
        from edgeopt.components._shared.progress import PlainProgress, current, job_progress
        configure_logging(0)
        with job_progress(2, interactive=False) as progress:
            assert isinstance(progress, PlainProgress) and current() is progress
            progress.recipe(1, 2, "ptq_int8", "quantize")
            assert progress.epochs(3, "fine-tuning") is None
            progress.recipe_done("ptq_int8", "gate passed")
        print(keras_verbosity())
    """)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "recipe 1/2 ptq_int8: quantize"
    assert lines[1].startswith("  ptq_int8: gate passed (")
    assert done.stdout.strip() == "0"


NOISE = ("oneDNN", "cuda", "cuInit", "absl", "fully_quantize", "XNNPACK", "Epoch 1/", "Statistics for quantized",
         "Assets written", "Downloading artifacts", "Gradients do not exist", "mlflow.pyfunc",
         "mlflow.store")  # fmt: skip


@pytest.mark.slow
def test_a_two_recipe_optimize_prints_the_table_and_no_library_noise(tiny_model, digits_examples, tmp_path):
    done = subprocess.run(
        ["edgeopt", "optimize", "--model", str(tiny_model), "--examples", str(digits_examples), "--data-spec",
         "configs/data/digits.yaml", "--recipe", "configs/recipes/ptq_int8.yaml", "--recipe",
         "configs/recipes/qat.yaml", "--out", str(tmp_path / "out"), "--timed-runs", "20"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode in (0, 3), done.stderr
    printed = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert not [line for line in printed if any(noise in line for noise in NOISE)], printed
    assert any(line.startswith("| ptq_int8 |") for line in printed) and any(
        line.startswith("| qat |") for line in printed
    )
    assert len(printed) <= 20, printed
    verbose = subprocess.run(
        ["edgeopt", "-v", "recipes"], capture_output=True, text=True, timeout=120
    )  # the same flags on every command
    assert verbose.returncode == 0 and "ptq_int8" in verbose.stdout


def test_version_names_edgeopt_and_its_stack():
    done = subprocess.run(["edgeopt", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0].startswith("edgeopt ")
    assert any(line.strip().startswith("tensorflow 2.21") for line in lines)
    assert any(line.strip().startswith("ai-edge-litert ") for line in lines)

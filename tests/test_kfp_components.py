"""KFP faces: each component's python_func on real data and a real model, the same config errors as the core,
golden compiled YAML, the image, and the recurring-run request."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml
from kfp import dsl

from edgeopt.components import __version__
from edgeopt.components._shared.errors import ConfigError
from edgeopt.components._shared.kfp_component import IMAGE
from edgeopt.components.calibration.kfp_component import sample_calibration_data
from edgeopt.components.clustering.kfp_component import cluster_weights
from edgeopt.components.demo.digits import digits_data_spec
from edgeopt.components.evaluation.kfp_component import evaluate_and_gate
from edgeopt.components.export.kfp_component import export_tflite
from edgeopt.components.pruning.kfp_component import prune
from edgeopt.components.qat.kfp_component import quantization_aware_train
from edgeopt.components.quantization.kfp_component import quantize
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.recipes.kfp_component import optimize_recipe
from edgeopt.pipelines.schedule import recurring_run_request, submit
from tests.helpers import kernels, overall_sparsity

ROOT = Path(__file__).resolve().parents[1]
COMPILED = ROOT / "pipelines" / "compiled"


@pytest.fixture(scope="module")
def spec():
    return digits_data_spec().to_dict()


def model_at(path):
    return dsl.Model(name="model", uri=str(path), metadata={})


def out(tmp_path, name, kind=dsl.Model):
    return kind(name=name, uri=str(tmp_path / name), metadata={})


@pytest.mark.slow
def test_sample_prune_quantize_export_evaluate_through_python_func(tiny_model, digits_examples, spec, tmp_path):
    examples = dsl.Dataset(name="examples", uri=str(digits_examples), metadata={})
    calibration, metrics = out(tmp_path, "calibration", dsl.Dataset), out(tmp_path, "m0", dsl.Metrics)
    sample_calibration_data.python_func(
        examples=examples, calibration=calibration, metrics=metrics, config={"size": 64, "label_key": "label"}
    )
    assert metrics.metadata["count"] == 64 and len(calibration.metadata["data_sha256"]) == 64

    pruned = out(tmp_path, "pruned")
    prune.python_func(
        model=model_at(tiny_model), examples=examples, pruned_model=pruned, metrics=out(tmp_path, "m1", dsl.Metrics),
        config={"target_sparsity": 0.5, "epochs": 2}, data_spec=spec,
    )  # fmt: skip
    assert pruned.metadata["achieved_sparsity"] >= 0.48

    quantized = out(tmp_path, "quantized")
    quantize.python_func(
        model=pruned, examples=examples, quantized_model=quantized, metrics=out(tmp_path, "m2", dsl.Metrics),
        calibration=calibration, config={"mode": "full_integer"}, data_spec=spec,
    )  # fmt: skip
    int8 = kernels(Path(quantized.path) / "model.tflite", "INT8")
    assert overall_sparsity(int8) >= 0.48
    assert quantized.metadata["edgeopt_config"]["mode"] == "full_integer"

    baseline = out(tmp_path, "baseline")
    export_tflite.python_func(
        model=model_at(tiny_model), examples=examples, tflite_model=baseline, metrics=out(tmp_path, "m3", dsl.Metrics),
        data_spec=spec,
    )  # fmt: skip
    results = {}
    for index, gate in enumerate(({"max_accuracy_drop": 5.0}, {"min_size_ratio": 100.0})):
        evaluation = out(tmp_path, f"evaluation{index}", dsl.Artifact)
        results[index] = evaluate_and_gate.python_func(
            candidate=quantized, baseline=baseline, examples=examples, metrics=out(tmp_path, f"e{index}", dsl.Metrics),
            report=out(tmp_path, f"report{index}", dsl.Markdown), evaluation=evaluation, gate=gate, data_spec=spec,
        )  # fmt: skip
        record = json.loads(Path(evaluation.path).read_text())
        assert record["size_ratio"] > 2.0 and record["gate"]["passed"] is (gate == {"max_accuracy_drop": 5.0})
    passed, refused = results.values()
    assert passed.passed is True and refused.passed is False
    assert 0.5 < passed.accuracy <= 1.0


@pytest.mark.parametrize(
    ("component", "output_name", "config", "key"),
    [
        (cluster_weights, "clustered_model", {"number_of_clusters": 8, "epochs": 1}, "max_unique_values"),
        (quantization_aware_train, "qat_model", {"epochs": 1}, "train_accuracy"),
    ],
    ids=["cluster", "qat"],
)
def test_training_components_through_python_func(
    component, output_name, config, key, tiny_model, digits_examples, spec, tmp_path
):
    output = out(tmp_path, output_name)
    component.python_func(
        model=model_at(tiny_model), examples=dsl.Dataset(name="e", uri=str(digits_examples), metadata={}),
        metrics=out(tmp_path, "metrics", dsl.Metrics), config=config, data_spec=spec, **{output_name: output},
    )  # fmt: skip
    assert (Path(output.path) / "saved_model.pb").exists()
    assert key in output.metadata


def test_optimize_recipe_writes_the_tflite_and_a_report(tiny_model, digits_examples, spec, tmp_path):
    optimized, report = out(tmp_path, "optimized"), out(tmp_path, "report", dsl.Markdown)
    optimize_recipe.python_func(
        model=model_at(tiny_model), examples=dsl.Dataset(name="e", uri=str(digits_examples), metadata={}),
        optimized_model=optimized, metrics=out(tmp_path, "metrics", dsl.Metrics), report=report,
        recipe=RecipeConfig.builtin("ptq_dynamic").to_json(), data_spec=spec,
    )  # fmt: skip
    assert {t.type_name for t in kernels(Path(optimized.path) / "model.tflite") if t.values.size >= 1024} == {"INT8"}
    assert optimized.metadata["recipe"] == "ptq_dynamic"
    assert Path(report.path).read_text().startswith("# ptq_dynamic")


def test_bad_config_gets_the_core_message(tiny_model, digits_examples, spec, tmp_path):
    with pytest.raises(ConfigError, match=r"QuantizationConfig\.mode: Input should be 'dynamic_range'"):
        quantize.python_func(
            model=model_at(tiny_model), examples=dsl.Dataset(name="e", uri=str(digits_examples), metadata={}),
            quantized_model=out(tmp_path, "q"), metrics=out(tmp_path, "m", dsl.Metrics), config={"mode": "int4"},
            data_spec=spec,
        )  # fmt: skip
    assert not (tmp_path / "q").exists()
    with pytest.raises(ConfigError, match="exactly one of data_spec"):
        prune.python_func(
            model=model_at(tiny_model), examples=dsl.Dataset(name="e", uri=str(digits_examples), metadata={}),
            pruned_model=out(tmp_path, "p"), metrics=out(tmp_path, "m2", dsl.Metrics),
        )  # fmt: skip


def test_compiled_yaml_matches_the_checked_in_files(tmp_path):
    from edgeopt.pipelines.kfp_pipeline import compile_all

    fresh = compile_all(tmp_path)
    assert len(fresh) == len(list(COMPILED.rglob("*.yaml")))
    for path in fresh:
        golden = COMPILED / path.relative_to(tmp_path)
        assert golden.exists(), f"{golden} is missing; run `make compile`"
        # Parsed, not text: KFP's header comment prints dict defaults in varying order.
        assert yaml.safe_load(path.read_text()) == yaml.safe_load(golden.read_text()), (
            f"{golden.name} differs from a fresh compile; run `make compile` and review the change"
        )


def test_every_step_runs_in_the_versioned_image():
    assert IMAGE == f"edgeopt:{__version__}"
    images = set()
    for path in COMPILED.rglob("*.yaml"):
        images |= set(re.findall(r"^\s+image: (\S+)$", path.read_text(), re.M))
    assert images == {IMAGE}


def test_dockerfile_installs_the_locked_environment():
    dockerfile = (ROOT / "Dockerfile").read_text()
    lock_header = (ROOT / "requirements.lock").read_text().splitlines()[0]
    assert "COPY requirements.lock" in dockerfile
    assert re.search(r"pip install .*-r /app/requirements\.lock", dockerfile)
    assert re.search(r"pip install .*--no-deps /app", dockerfile)
    python = re.search(r"Python (\d+\.\d+)", lock_header).group(1)
    assert re.search(rf"^FROM python:{re.escape(python)}-", dockerfile, re.M)
    assert "packages_to_install" not in "".join(p.read_text() for p in (ROOT / "components").rglob("kfp_component.py"))


def test_recurring_run_request_is_validated(tmp_path):
    package = COMPILED / "retrain_and_compress.yaml"
    request = recurring_run_request("0 0 3 * * *", pipeline_package=str(package), params={"source": "s", "recipes": []})
    assert request.cron_expression == "0 0 3 * * *" and request.enable_caching is False
    with pytest.raises(ConfigError, match="KFP needs six, seconds first"):
        recurring_run_request("0 3 * * *", pipeline_package=str(package), params={"source": "s", "recipes": []})
    with pytest.raises(ConfigError, match=r"\['recipes'\] are required"):
        recurring_run_request("0 0 3 * * *", pipeline_package=str(package), params={"source": "s"})


class _RecordingKfpApi(BaseHTTPRequestHandler):
    """Stands in for a Kubeflow Pipelines API server, which cannot run here: records requests, answers minimally."""

    requests: list = []

    def _answer(self, body: dict):
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):  # noqa: N802
        self.requests.append(("GET", self.path, None))
        self._answer({"experiments": []} if "experiments" in self.path else {})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        self.requests.append(("POST", self.path, body))
        if self.path.endswith("/experiments"):
            self._answer({"experiment_id": "exp-1", "display_name": body.get("display_name")})
        else:
            self._answer({"recurring_run_id": "rr-1", **body})

    def log_message(self, *args):
        pass


def test_schedule_sends_the_recurring_run_to_the_kfp_api(tmp_path):
    _RecordingKfpApi.requests = []
    server = HTTPServer(("127.0.0.1", 0), _RecordingKfpApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        params = {"source": "/data/*.csv", "recipes": [RecipeConfig.builtin("ptq_int8").model_dump_json()]}
        request = recurring_run_request(
            "0 0 3 * * *", pipeline_package=str(COMPILED / "retrain_and_compress.yaml"), params=params
        )
        submit(request, f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    posts = {path: body for method, path, body in _RecordingKfpApi.requests if method == "POST"}
    recurring = next(body for path, body in posts.items() if path.endswith("/recurringruns"))
    assert recurring["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
    assert recurring["experiment_id"] == "exp-1"
    assert recurring["pipeline_spec"]["pipelineInfo"]["name"] == "edgeopt-retrain-and-compress"
    assert recurring["runtime_config"]["parameters"]["source"] == "/data/*.csv"
    assert np.isclose(recurring["max_concurrency"], 1) or recurring["max_concurrency"] == "1"


def _log_executor_input(env: dict) -> list[str]:
    """Logs an executor input the way kfp.dsl.executor_main does, with the image's .pth import in place."""
    import os
    import subprocess
    import sys

    script = (
        "import edgeopt.components._shared.kfp_logging, json, logging, sys\n"
        "logging.basicConfig(stream=sys.stdout, format='[KFP Executor %(levelname)s]: %(message)s', level=20)\n"
        "payload = {'inputs': {'parameterValues': {f'p{i}': i for i in range(60)}}}\n"
        "logging.info(f'Got executor_input:\\n{json.dumps(payload, indent=4)}')\n"
        "logging.info('Wrote executor output file to /tmp/x.')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_executor_input_is_one_line_unless_verbose():
    quiet = _log_executor_input({"EDGEOPT_KFP_VERBOSE": "0"})
    assert len(quiet) == 2 and "set EDGEOPT_KFP_VERBOSE=1" in quiet[0] and "Wrote executor output" in quiet[1]
    assert len(_log_executor_input({"EDGEOPT_KFP_VERBOSE": "1"})) > 60
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'echo "import edgeopt.components._shared.kfp_logging"' in dockerfile and ".pth" in dockerfile


def test_calibration_step_runs_in_process_without_prism(digits_examples, tmp_path, monkeypatch):
    from apache_beam.runners.portability import prism_runner

    started = []
    monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", lambda *args, **kwargs: started.append(args))
    examples = dsl.Dataset(name="examples", uri=str(digits_examples), metadata={})
    calibration, metrics = out(tmp_path, "calibration", dsl.Dataset), out(tmp_path, "metrics", dsl.Metrics)
    sample_calibration_data.python_func(
        examples=examples, calibration=calibration, metrics=metrics, config={"size": 32, "label_key": "label"}
    )
    assert started == [] and metrics.metadata["count"] == 32
    assert (tmp_path / "calibration" / "manifest.json").is_file()


def test_components_do_not_pip_install_kfp_at_run_time():
    for path in COMPILED.rglob("*.yaml"):
        assert "pip install" not in path.read_text(), f"{path.name} installs packages at run time; the image has them"

"""Compiling the pipelines for a cluster: image, pipeline root, parameters, resources, retries; the checker that a
spec compiled for the cloud holds no local path or default image; Vertex AI's and KFP's own validation."""

import json
from pathlib import Path

import pytest
import yaml
from google.auth.credentials import AnonymousCredentials
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from edgeopt.components._shared.errors import ConfigError
from edgeopt.components._shared.kfp_component import VERSIONED_IMAGE
from edgeopt.components.cli import main
from edgeopt.pipelines.config import PipelineConfig
from edgeopt.pipelines.deployment import StepKind, StepResources, step_kind
from edgeopt.pipelines.spec_check import check_cloud_spec, deployment_problems

IMAGE = "example.org/team/edgeopt:1.0"
CLOUD = [
    "--image", IMAGE, "--pipeline-root", "gs://b/root", "--source", "gs://b/digits/*.csv",
    "--serving-destination", "gs://b/serving", "--tracking-uri", "http://mlflow.example.org:5000",
]  # fmt: skip


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Both engines compiled through the CLI with cloud settings (the issue's "done when" command)."""
    out = tmp_path_factory.mktemp("compiled")
    assert main(["pipeline", "compile", "--engine", "kfp", "--out", str(out / "kfp.yaml"), *CLOUD]) == 0
    assert main(["pipeline", "compile", "--engine", "tfx", "--out", str(out / "tfx.json"), *CLOUD]) == 0
    return {"kfp": out / "kfp.yaml", "tfx": out / "tfx.json"}


def test_cloud_compile_names_the_image_and_no_local_path(compiled):
    kfp_spec = yaml.safe_load(compiled["kfp"].read_text())
    images = {executor["container"]["image"] for executor in kfp_spec["deploymentSpec"]["executors"].values()}
    assert images == {IMAGE}
    assert kfp_spec["defaultPipelineRoot"] == "gs://b/root"
    tfx_job = json.loads(compiled["tfx"].read_text())
    executors = tfx_job["pipelineSpec"]["deploymentSpec"]["executors"]
    assert {executor["container"]["image"] for executor in executors.values()} == {IMAGE}
    assert tfx_job["runtimeConfig"]["gcsOutputDirectory"] == "gs://b/root"
    for path in compiled.values():
        check_cloud_spec(path)  # raises on any local path or the default image


def test_checker_fails_on_a_local_compile(tmp_path):
    from edgeopt.pipelines.kfp_pipeline import compile_pipeline
    from edgeopt.pipelines.tfx_pipeline import compile_for_kubeflow

    kfp_file = compile_pipeline(PipelineConfig(image=VERSIONED_IMAGE), tmp_path / "kfp.yaml")
    with pytest.raises(ConfigError, match=r"default image 'edgeopt:.*compile with --image"):
        check_cloud_spec(kfp_file)
    local = PipelineConfig(image=IMAGE, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    problems = deployment_problems(compile_for_kubeflow(local, tmp_path / "tfx.json"))
    assert any("'/pipeline-root'" in problem for problem in problems)
    assert any("'/serving/ptq_int8'" in problem for problem in problems)
    assert any("sqlite:///" in problem and "tracking_uri" in problem for problem in problems), problems
    assert not any("default image" in problem for problem in problems)


def test_run_settings_are_pipeline_parameters_with_the_config_defaults(compiled):
    kfp_spec = yaml.safe_load(compiled["kfp"].read_text())
    parameters = kfp_spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["source"]["defaultValue"] == "gs://b/digits/*.csv"
    assert parameters["tracking_uri"]["defaultValue"] == "http://mlflow.example.org:5000"
    assert parameters["selection"]["defaultValue"] == {"objective": "gzip_bytes", "among": "passed"}
    assert len(parameters["recipes"]["defaultValue"]) == 2
    tfx_job = json.loads(compiled["tfx"].read_text())
    tasks = tfx_job["pipelineSpec"]["root"]["dag"]["tasks"]
    assert tasks["CsvExampleGen"]["inputs"]["parameters"]["input_base"] == {"componentInputParameter": "data_root"}
    assert "data_root" in tfx_job["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]
    assert "MlflowReporter" in tasks
    tracking = json.loads(
        tasks["MlflowReporter"]["inputs"]["parameters"]["tracking"]["runtimeValue"]["constantValue"]["stringValue"]
    )
    assert tracking["tracking_uri"] == "http://mlflow.example.org:5000"
    push = tasks["Push_ptq_int8"]["inputs"]["parameters"]["push_destination"]["runtimeValue"]["constantValue"]
    assert json.loads(push["stringValue"])["filesystem"]["base_directory"] == "gs://b/serving/ptq_int8"


def test_each_step_gets_its_kinds_resources_and_retries(compiled):
    kfp_spec = yaml.safe_load(compiled["kfp"].read_text())
    executors = kfp_spec["deploymentSpec"]["executors"]
    defaults = PipelineConfig().resources
    train = executors["exec-train-model"]["container"]["resources"]
    assert train["cpuRequest"] == defaults.training.cpu_request and train["memoryLimit"] == 16.0
    assert executors["exec-read-examples"]["container"]["resources"]["cpuLimit"] == defaults.light.cpu_limit
    assert executors["exec-evaluate-and-gate"]["container"]["resources"]["memoryRequest"] == 4.0
    tasks = kfp_spec["root"]["dag"]["tasks"]
    assert tasks["train-model"]["retryPolicy"] == {
        "backoffDuration": "30s", "backoffFactor": 2.0, "backoffMaxDuration": "600s", "maxRetryCount": 2,
    }  # fmt: skip
    assert tasks["train-model"]["cachingOptions"]["enableCache"] is True
    tfx_executors = json.loads(compiled["tfx"].read_text())["pipelineSpec"]["deploymentSpec"]["executors"]
    assert tfx_executors["Trainer_executor"]["container"]["resources"] == {"cpuLimit": 4.0, "memoryLimit": 16.0}
    assert tfx_executors["Push_ptq_int8_executor"]["container"]["resources"]["cpuLimit"] == 1.0


def test_gpu_timeout_and_no_cache_from_the_config(tmp_path):
    from edgeopt.pipelines.kfp_pipeline import compile_pipeline
    from edgeopt.pipelines.tfx_pipeline import compile_for_kubeflow

    gpu = StepResources(cpu_request=2, accelerator_type="nvidia.com/gpu", accelerator_count=1)
    config = PipelineConfig(
        image=IMAGE,
        resources={"training": gpu.to_dict()},
        timeout_seconds=3600,
        enable_cache=False,
        retry={"num_retries": 0},
    )
    documents = list(yaml.safe_load_all(compile_pipeline(config, tmp_path / "kfp.yaml").read_text()))
    spec, platform = documents
    accelerator = spec["deploymentSpec"]["executors"]["exec-optimize-recipe"]["container"]["resources"]["accelerator"]
    assert accelerator["resourceCount"] == "1" and accelerator["resourceType"] == "nvidia.com/gpu"
    assert "accelerator" not in spec["deploymentSpec"]["executors"]["exec-export-tflite"]["container"]["resources"]
    assert platform["platforms"]["kubernetes"]["pipelineConfig"]["activeDeadlineSeconds"] == 3600
    assert spec["root"]["dag"]["tasks"]["train-model"]["cachingOptions"] == {}
    assert "retryPolicy" not in spec["root"]["dag"]["tasks"]["train-model"]
    tfx_job = json.loads(Path(compile_for_kubeflow(config, tmp_path / "tfx.json")).read_text())
    trainer = tfx_job["pipelineSpec"]["deploymentSpec"]["executors"]["Optimize_ptq_int8_executor"]["container"]
    assert trainer["resources"]["accelerator"] == {"type": "nvidia.com/gpu", "count": "1"}


def test_step_kinds_and_resource_rules():
    assert step_kind("optimize-recipe") is StepKind.TRAINING and step_kind("Optimize_prune80_int8") is StepKind.TRAINING
    assert step_kind("Push_ptq_int8") is StepKind.LIGHT and step_kind("evaluate-and-gate") is StepKind.COMPUTE
    with pytest.raises(ConfigError, match="accelerator_count > 0 needs accelerator_type"):
        StepResources(accelerator_count=1)
    with pytest.raises(ConfigError, match="cpu_request is above cpu_limit"):
        StepResources(cpu_request=4, cpu_limit=2)


def test_tfx_compile_with_a_cloud_root_never_opens_it(tmp_path, monkeypatch):
    from tfx.dsl.io import fileio

    from edgeopt.pipelines.tfx_pipeline import compile_for_kubeflow

    touched = []
    for name in ("exists", "isdir", "makedirs", "open", "glob", "listdir", "mkdir"):
        original = getattr(fileio, name)

        def guarded(path, *args, _original=original, **kwargs):
            if str(path).startswith("gs://"):
                touched.append(str(path))
                raise AssertionError(f"compile touched {path}")
            return _original(path, *args, **kwargs)

        monkeypatch.setattr(fileio, name, guarded)
    config = PipelineConfig(image=IMAGE, pipeline_root="gs://b/root", data_source="gs://b/csv")
    compile_for_kubeflow(config, tmp_path / "tfx.json")
    assert touched == []
    with pytest.raises(ConfigError, match="is a file path; compiling for Kubeflow needs an import name"):
        compile_for_kubeflow(config, tmp_path / "other.json", module_file=str(tmp_path / "module.py"))


def test_compile_and_schedule_warn_without_a_tracking_uri(tmp_path, capsys):
    assert main(["pipeline", "compile", "--engine", "kfp", "--out", str(tmp_path / "p.yaml"), "--image", IMAGE]) == 0
    assert "warning: no MLflow tracking URI" in capsys.readouterr().err
    package = str(tmp_path / "p.yaml")
    schedule = ["schedule", "--host", "http://kfp", "--cron", "0 0 3 * * *", "--source", "gs://b/*.csv"]
    assert main([*schedule, "--package", package, "--dry-run"]) == 0
    assert "warning: no MLflow tracking URI" in capsys.readouterr().err
    assert main([*schedule, "--package", package, "--dry-run", "--tracking-uri", "http://mlflow:5000"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_specs_pass_vertex_ai_and_kfp_validation(compiled):
    from google.cloud import aiplatform
    from kfp import components

    for path in compiled.values():
        job = aiplatform.PipelineJob(
            display_name="edgeopt",
            template_path=str(path),
            pipeline_root="gs://b/root",
            project="example-project",
            location="us-central1",
            credentials=AnonymousCredentials(),
        )
        assert job.to_dict()["pipelineSpec"]["root"]["dag"]["tasks"]
    assert components.load_component_from_file(str(compiled["kfp"])).name == "edgeopt-retrain-and-compress"
    spec = json.loads(compiled["tfx"].read_text())["pipelineSpec"]
    parsed = json_format.Parse(json.dumps(spec), pipeline_spec_pb2.PipelineSpec())
    assert "MlflowReporter" in parsed.root.dag.tasks


@pytest.mark.parametrize(
    "image", ["example.org/team/edgeopt:1.0", "edgeopt:0.1.0", "localhost:5000/ml/edgeopt@sha256:" + "a" * 64]
)
def test_image_references_are_accepted(image):
    assert PipelineConfig(image=image).resolved_image() == image


@pytest.mark.parametrize("image", ["edge opt:1", "Example.org/Team/EdgeOpt", "edgeopt@sha256:abc"])
def test_bad_image_references_are_rejected_naming_the_form(image):
    with pytest.raises(ConfigError, match=r"PipelineConfig.image: .*REGISTRY/NAME\[:TAG\] or REGISTRY/NAME@sha256"):
        PipelineConfig(image=image)

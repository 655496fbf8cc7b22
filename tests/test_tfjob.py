"""A fine-tuning step as a TFJob: the manifest the Training Operator receives, the submit-and-wait loop against a
stand-in for the Kubernetes API (no cluster here), and the KFP example of pipelines/TFJOB.md compiled."""

import re
from pathlib import Path

import pytest
import yaml

from edgeopt.components._shared.errors import ConfigError, DistributedJobError
from edgeopt.pipelines.tfjob import TFJobConfig, run_tfjob, tfjob_manifest

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "registry.example.com/ml/edgeopt:0.1.0"
COMMAND = ["edgeopt", "optimize", "--model", "/workspace/model", "--out", "/workspace/out"]
GPU = {"cpu_request": 8, "memory_request_gb": 32, "accelerator_type": "nvidia.com/gpu", "accelerator_count": 2}


def _containers(manifest):
    for kind, spec in manifest["spec"]["tfReplicaSpecs"].items():
        yield kind, spec["template"]["spec"]["containers"]


def test_chief_and_workers_run_the_command_in_the_image_with_their_gpus():
    config = TFJobConfig(image=IMAGE, workers=3, resources=GPU, volume_claim="shared", namespace="team")
    manifest = tfjob_manifest("prune-digits", COMMAND, config)
    assert (manifest["apiVersion"], manifest["kind"]) == ("kubeflow.org/v1", "TFJob")
    assert manifest["metadata"]["name"] == "prune-digits" and manifest["metadata"]["namespace"] == "team"
    replicas = manifest["spec"]["tfReplicaSpecs"]
    assert {kind: spec["replicas"] for kind, spec in replicas.items()} == {"Chief": 1, "Worker": 3}
    assert {spec["restartPolicy"] for spec in replicas.values()} == {"Never"}
    assert manifest["spec"]["runPolicy"] == {"cleanPodPolicy": "Running", "backoffLimit": 0}
    for _, containers in _containers(manifest):
        (container,) = containers
        assert container["name"] == "tensorflow"  # the operator sets TF_CONFIG in the container of this name
        assert container["image"] == IMAGE and container["command"] == COMMAND
        assert container["resources"] == {
            "requests": {"cpu": "8", "memory": "32G"},
            "limits": {"nvidia.com/gpu": "2"},
        }
        assert container["volumeMounts"] == [{"name": "workspace", "mountPath": "/workspace"}]
    pod = replicas["Worker"]["template"]
    assert pod["spec"]["volumes"] == [{"name": "workspace", "persistentVolumeClaim": {"claimName": "shared"}}]
    assert pod["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert "TF_CONFIG" not in yaml.safe_dump(manifest)  # the operator writes it for each replica


def test_without_a_chief_worker_zero_leads_and_a_cpu_job_asks_for_no_gpu():
    manifest = tfjob_manifest("two-workers", COMMAND, TFJobConfig(image=IMAGE, chief=False, workers=2, env={"A": "1"}))
    assert {kind: spec["replicas"] for kind, spec in manifest["spec"]["tfReplicaSpecs"].items()} == {"Worker": 2}
    (container,) = manifest["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert container["env"] == [{"name": "A", "value": "1"}] and "volumeMounts" not in container


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TFJobConfig(image=IMAGE, env={"TF_CONFIG": "{}"}), r"set by the Training Operator"),
        (lambda: TFJobConfig(image=IMAGE, chief=False, workers=0), r"needs a replica"),
        (lambda: TFJobConfig(image="Not An Image"), r"not an image reference"),
        (
            lambda: TFJobConfig(image=IMAGE, resources={"accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 1}),
            r"not a Kubernetes resource name; use nvidia.com/gpu",
        ),
        (lambda: tfjob_manifest("Prune_Digits", COMMAND, TFJobConfig(image=IMAGE)), r"lowercase letters"),
        (lambda: tfjob_manifest("prune", [], TFJobConfig(image=IMAGE)), r"non-empty list of strings"),
    ],
    ids=["tf-config", "no-replica", "image", "vertex-accelerator", "name", "command"],
)
def test_what_the_operator_would_reject_is_refused_here(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


class FakeTFJobApi:
    """Stands in for kubernetes.client.CustomObjectsApi: records calls, answers with the given conditions in turn."""

    def __init__(self, conditions):
        self.conditions, self.calls = list(conditions), []

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        self.calls.append(("create", group, version, namespace, plural, body))
        return {**body, "metadata": {**body["metadata"], "name": body["metadata"]["generateName"] + "x7k2p"}}

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.calls.append(("get", name))
        return {"status": {"conditions": self.conditions.pop(0)}}

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.calls.append(("delete", name))


def _conditions(*types):
    return [{"type": kind, "status": "True", "reason": f"TFJob{kind}", "message": f"job is {kind}"} for kind in types]


def test_the_job_is_created_under_a_fresh_name_and_awaited():
    api = FakeTFJobApi([[], _conditions("Created"), _conditions("Created", "Running", "Succeeded")])
    manifest = tfjob_manifest("prune-digits", COMMAND, TFJobConfig(image=IMAGE, namespace="team"))
    sleeps = []
    name = run_tfjob(manifest, api=api, poll_seconds=5, sleep=sleeps.append)
    assert name == "prune-digits-x7k2p" and sleeps == [5, 5]
    create = api.calls[0]
    assert create[1:5] == ("kubeflow.org", "v1", "team", "tfjobs")
    assert create[5]["metadata"]["generateName"] == "prune-digits-" and "name" not in create[5]["metadata"]
    assert manifest["metadata"]["name"] == "prune-digits"  # the caller's manifest is left as it was
    assert not any(call[0] == "delete" for call in api.calls)


def test_a_failed_job_fails_the_step_with_its_reason_and_where_the_logs_are():
    api = FakeTFJobApi([_conditions("Created", "Running", "Failed")])
    expected = r"team/prune-digits-x7k2p failed: TFJobFailed job is Failed.*kubectl logs -n team -l training"
    with pytest.raises(DistributedJobError, match=expected):
        run_tfjob(tfjob_manifest("prune-digits", COMMAND, TFJobConfig(image=IMAGE, namespace="team")), api=api)


def test_a_job_past_its_timeout_is_deleted():
    api = FakeTFJobApi([_conditions("Created", "Running")] * 3)
    manifest = tfjob_manifest("prune-digits", COMMAND, TFJobConfig(image=IMAGE))
    with pytest.raises(DistributedJobError, match=r"did not finish within 0 s \(last condition: Running\)"):
        run_tfjob(manifest, api=api, namespace="team", timeout_seconds=0, sleep=lambda _: None)
    assert api.calls[-1] == ("delete", "prune-digits-x7k2p")


def test_the_tfjob_page_example_compiles_to_a_pipeline_running_the_manifest(tmp_path):
    from kfp import compiler

    text = (ROOT / "pipelines" / "TFJOB.md").read_text()
    block = re.search(r"<!-- tested-tfjob-example -->\n```python\n(.*?)```", text, re.S).group(1)
    namespace = {}
    exec(compile(block, "TFJOB.md", "exec"), namespace)  # noqa: S102 (the page's own example)
    compiler.Compiler().compile(namespace["fine_tune_as_tfjob"], str(tmp_path / "pipeline.yaml"))
    spec = yaml.safe_load((tmp_path / "pipeline.yaml").read_text())
    (task,) = spec["root"]["dag"]["tasks"].values()
    sent = task["inputs"]["parameters"]["manifest"]["runtimeValue"]["constant"]
    assert sent == namespace["manifest"]
    assert sent["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "memory": "64G",
        "nvidia.com/gpu": "2",
    }
    assert task["inputs"]["parameters"]["timeout_seconds"]["runtimeValue"]["constant"] == 6 * 3600

"""A fine-tuning step as a Kubeflow Training Operator TFJob: the manifest, and submitting it and waiting for it.

Every replica runs the same command (e.g. `edgeopt optimize ...`) in the edgeopt image. The operator sets each
replica's TF_CONFIG (cluster and task); with `distribution: auto` the fine-tuning steps then train under
MultiWorkerMirroredStrategy, each replica using the GPUs its pod was given, and only the chief writes `--out`.
See pipelines/TFJOB.md. Plain Python: the kubernetes client is imported inside the functions that talk to a cluster.
"""

import logging
import re
import time

import pydantic

from edgeopt.components._shared.config_base import StrictConfig
from edgeopt.components._shared.errors import ConfigError, DistributedJobError
from edgeopt.pipelines.config import is_image_reference
from edgeopt.pipelines.deployment import StepResources

logger = logging.getLogger(__name__)

GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v1", "tfjobs", "TFJob"
# The operator finds the TensorFlow container by this name: it sets TF_CONFIG and the port 2222 there.
CONTAINER_NAME = "tensorflow"
WORKSPACE_VOLUME = "workspace"
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
# The operator's own variable: a hand-set TF_CONFIG would describe another cluster than the pods it created.
RESERVED_ENV = ("TF_CONFIG",)


class TFJobConfig(StrictConfig):
    """How a fine-tuning command runs as a TFJob: replicas, image, resources per replica, the shared volume."""

    image: str = pydantic.Field(
        description="The edgeopt image every replica runs (`docker build -t REGISTRY/edgeopt:VERSION .`, README)."
    )
    chief: bool = pydantic.Field(
        True, description="A Chief replica (TF task type `chief`, the one that writes outputs); else worker 0 is."
    )
    workers: int = pydantic.Field(1, ge=0, description="Worker replicas beside the chief.")
    resources: StepResources = pydantic.Field(
        default_factory=lambda: StepResources(cpu_request=2, cpu_limit=4, memory_request_gb=8, memory_limit_gb=16),
        description="CPU, memory and GPUs of each replica (accelerator_type: a Kubernetes resource, nvidia.com/gpu).",
    )
    volume_claim: str | None = pydantic.Field(
        None,
        description="A ReadWriteMany PersistentVolumeClaim mounted in every replica: the model, Examples and --out.",
    )
    mount_path: str = pydantic.Field("/workspace", pattern=r"^/", description="Where the volume is mounted.")
    namespace: str | None = pydantic.Field(None, description="Kubernetes namespace (unset: the launcher's own).")
    service_account: str | None = pydantic.Field(None, description="The replicas' service account (e.g. for gs://).")
    env: dict[str, str] = pydantic.Field(default_factory=dict, description="Extra environment of every replica.")
    disable_istio_sidecar: bool = pydantic.Field(
        True, description="Annotate the pods so Istio injects no sidecar (Kubeflow user namespaces need this)."
    )
    backoff_limit: int = pydantic.Field(0, ge=0, description="Restarts of a failed job before it counts as failed.")
    active_deadline_seconds: int | None = pydantic.Field(None, gt=0, description="The job is stopped after this.")
    ttl_seconds_after_finished: int | None = pydantic.Field(
        None, ge=0, description="The finished TFJob and its pods are deleted after this (unset: kept)."
    )

    @pydantic.field_validator("image")
    @classmethod
    def _image(cls, image):
        if not is_image_reference(image):
            raise ValueError(f"'{image}' is not an image reference; use REGISTRY/NAME[:TAG] or NAME@sha256:DIGEST")
        return image

    @pydantic.field_validator("env")
    @classmethod
    def _no_tf_config(cls, env):
        reserved = sorted(set(env) & set(RESERVED_ENV))
        if reserved:
            raise ValueError(f"{reserved} is set by the Training Operator for each replica; leave it out of env")
        return env

    @pydantic.model_validator(mode="after")
    def _replicas_and_gpus(self):
        if not self.chief and not self.workers:
            raise ValueError("a TFJob needs a replica: chief: true, or workers >= 1")
        accelerator = self.resources.accelerator_type
        if self.resources.accelerator_count and "/" not in (accelerator or ""):
            raise ValueError(
                f"resources.accelerator_type '{accelerator}' is not a Kubernetes resource name; use nvidia.com/gpu "
                "(or your device plugin's, e.g. amd.com/gpu)"
            )
        return self


def tfjob_manifest(name: str, command: list[str], config: TFJobConfig) -> dict:
    """The `kubeflow.org/v1` TFJob running `command` on every replica, as a dict ready for YAML or the API.

    Args:
      name: the TFJob's name (a DNS-1035 label: lowercase letters, digits and '-', starting with a letter).
      command: what each replica runs, e.g. ["edgeopt", "optimize", "--model", "/workspace/model", ...].
      config: replicas, image, resources per replica, volume, namespace.

    Returns:
      The manifest. TF_CONFIG is not in it: the operator sets it in each replica.

    Raises:
      ConfigError: an invalid name or an empty command.

    Example:
      >>> manifest = tfjob_manifest("prune-mnist", ["edgeopt", "optimize", ...], TFJobConfig(image="r/edgeopt:0.1.0"))
      >>> sorted(manifest["spec"]["tfReplicaSpecs"])
      ['Chief', 'Worker']
    """
    if not _DNS_1035.match(name or ""):
        raise ConfigError(f"TFJob name '{name}' must be lowercase letters, digits and '-', start with a letter, <= 63")
    if not command or not all(isinstance(part, str) and part for part in command):
        raise ConfigError(f"the TFJob command must be a non-empty list of strings, got {command!r}")
    replicas = {"Chief": 1 if config.chief else 0, "Worker": config.workers}
    template = _pod_template(command, config)
    run_policy = {"cleanPodPolicy": "Running", "backoffLimit": config.backoff_limit}
    if config.active_deadline_seconds is not None:
        run_policy["activeDeadlineSeconds"] = config.active_deadline_seconds
    if config.ttl_seconds_after_finished is not None:
        run_policy["ttlSecondsAfterFinished"] = config.ttl_seconds_after_finished
    metadata = {"name": name, "labels": {"app.kubernetes.io/name": "edgeopt", "app.kubernetes.io/component": "tfjob"}}
    if config.namespace:
        metadata["namespace"] = config.namespace
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": metadata,
        "spec": {
            "runPolicy": run_policy,
            "tfReplicaSpecs": {
                kind: {"replicas": count, "restartPolicy": "Never", "template": template}
                for kind, count in replicas.items()
                if count
            },
        },
    }


def _pod_template(command: list[str], config: TFJobConfig) -> dict:
    """The replicas' pod template, built from the kubernetes client's own models so every field name is right."""
    from kubernetes import client

    resources = config.resources
    requests, limits = {}, {}
    if resources.cpu_request:
        requests["cpu"] = f"{resources.cpu_request:g}"
    if resources.memory_request_gb:
        requests["memory"] = f"{resources.memory_request_gb:g}G"
    if resources.cpu_limit:
        limits["cpu"] = f"{resources.cpu_limit:g}"
    if resources.memory_limit_gb:
        limits["memory"] = f"{resources.memory_limit_gb:g}G"
    if resources.accelerator_count:  # extended resources go in limits (Kubernetes copies them to requests)
        limits[resources.accelerator_type] = str(resources.accelerator_count)
    mounts, volumes = None, None
    if config.volume_claim:
        mounts = [client.V1VolumeMount(name=WORKSPACE_VOLUME, mount_path=config.mount_path)]
        claim = client.V1PersistentVolumeClaimVolumeSource(claim_name=config.volume_claim)
        volumes = [client.V1Volume(name=WORKSPACE_VOLUME, persistent_volume_claim=claim)]
    container = client.V1Container(
        name=CONTAINER_NAME,
        image=config.image,
        command=list(command),
        env=[client.V1EnvVar(name=key, value=value) for key, value in sorted(config.env.items())] or None,
        resources=client.V1ResourceRequirements(requests=requests or None, limits=limits or None),
        volume_mounts=mounts,
    )
    annotations = {"sidecar.istio.io/inject": "false"} if config.disable_istio_sidecar else None
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(annotations=annotations),
        spec=client.V1PodSpec(containers=[container], volumes=volumes, service_account_name=config.service_account),
    )
    return client.ApiClient().sanitize_for_serialization(template)


def run_tfjob(
    manifest: dict,
    *,
    api=None,
    namespace: str | None = None,
    unique_name: bool = True,
    timeout_seconds: float = 24 * 3600,
    poll_seconds: float = 30,
    sleep=time.sleep,
) -> str:
    """Creates the TFJob and waits until it succeeds; returns its name.

    Args:
      manifest: from `tfjob_manifest`.
      api: a kubernetes `CustomObjectsApi` (default: the in-cluster one, as in a KFP step's pod).
      namespace: where to create it (default: the manifest's, else the pod's own namespace).
      unique_name: create it under `generateName: NAME-` so every pipeline run gets its own job.
      timeout_seconds: the job is deleted and the step fails after this long.
      poll_seconds: how often its status is read.

    Raises:
      DistributedJobError: the job failed (its last condition and message), or did not finish in time.
    """
    if api is None:
        from kubernetes import client, config

        config.load_incluster_config()
        api = client.CustomObjectsApi()
    namespace = namespace or manifest["metadata"].get("namespace") or _pod_namespace()
    body = {**manifest, "metadata": dict(manifest["metadata"])}
    if unique_name:
        body["metadata"]["generateName"] = body["metadata"].pop("name") + "-"
    created = api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    name = created["metadata"]["name"]
    logger.info("created TFJob %s/%s; waiting for it (kubectl get tfjob -n %s %s)", namespace, name, namespace, name)
    deadline = time.monotonic() + timeout_seconds
    while True:
        status = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name).get("status") or {}
        condition = _last_condition(status)
        if condition.get("type") == "Succeeded":
            logger.info("TFJob %s succeeded", name)
            return name
        if condition.get("type") == "Failed":
            raise DistributedJobError(
                f"TFJob {namespace}/{name} failed: {condition.get('reason', '')} {condition.get('message', '')}; "
                f"see its replicas' logs: kubectl logs -n {namespace} -l training.kubeflow.org/job-name={name}"
            )
        if time.monotonic() > deadline:
            api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            raise DistributedJobError(
                f"TFJob {namespace}/{name} did not finish within {timeout_seconds:g} s (last condition: "
                f"{condition.get('type', 'none')}); it was deleted. Raise timeout_seconds or check its pods"
            )
        sleep(poll_seconds)


def _last_condition(status: dict) -> dict:
    """The operator appends conditions (Created, Running, Restarting, Succeeded, Failed); the last true one counts."""
    current = [c for c in status.get("conditions") or [] if str(c.get("status")) == "True"]
    return current[-1] if current else {}


def _pod_namespace() -> str:
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as err:
        raise ConfigError(f"no namespace given and {path} is missing (not in a pod); pass namespace") from err

"""KFP face of pipelines/tfjob.py: `launch_tfjob`, a step that runs a fine-tuning TFJob and waits for it."""

from kfp import dsl

from edgeopt.components._shared.kfp_component import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def launch_tfjob(manifest: dict, namespace: str = "", timeout_seconds: int = 86400, poll_seconds: int = 30) -> str:
    """Creates the TFJob (`edgeopt.pipelines.tfjob.tfjob_manifest`) under a name unique to this run, waits until it
    succeeds and returns that name; a failed job, or one still running after `timeout_seconds` (then deleted), fails
    the step. The step's service account needs create, get and delete on tfjobs.kubeflow.org in the namespace
    (default: the step's own). See pipelines/TFJOB.md."""
    from edgeopt.pipelines.tfjob import run_tfjob

    return run_tfjob(manifest, namespace=namespace or None, timeout_seconds=timeout_seconds, poll_seconds=poll_seconds)

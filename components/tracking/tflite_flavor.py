"""An MLflow model for a .tflite file: a pyfunc whose `predict` runs the model with the LiteRT interpreter, so
`mlflow.pyfunc.load_model("models:/NAME@challenger").predict(batch)` works on what edgeopt registers.

    save_model("candidates/ptq_int8/model.tflite", "out/mlflow-model")   # MLmodel, signature, input example
    model = mlflow.pyfunc.load_model("out/mlflow-model")
    probabilities = model.predict(batch.astype("float32"))

Inputs and outputs are in the float model's space: quantized int8/int16 I/O is (de)quantized with the model's own
scale and zero point (components/_shared/tflite_runtime.py), as everywhere in edgeopt.
"""

import hashlib
import os
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np

from edgeopt.components import __version__
from edgeopt.components._shared.errors import EdgeoptError, TrackingError

TFLITE_ARTIFACT = "tflite"
FLAVOR_NAME = "edgeopt_tflite"


class TfliteModel(mlflow.pyfunc.PythonModel):
    """The pyfunc: opens the .tflite from the model's artifacts and runs batches through LiteRT."""

    def load_context(self, context):
        from edgeopt.components._shared.tflite_runtime import TfliteRunner

        self._runner = TfliteRunner(context.artifacts[TFLITE_ARTIFACT])

    def predict(self, context, model_input, params=None):
        return _run(self._runner, model_input)


def _as_float_inputs(model_input):
    """A batch as the runner takes it: one float32 array, or a dict of them keyed by the model's input names."""
    if isinstance(model_input, dict):
        return {name: np.asarray(value, dtype=np.float32) for name, value in model_input.items()}
    if hasattr(model_input, "to_numpy"):  # a pandas DataFrame from a column-based caller
        model_input = model_input.to_numpy()
    return np.asarray(model_input, dtype=np.float32)


def _run(runner, model_input):
    """The model's output for a batch: one array, or a dict keyed by output name when the model has several."""
    outputs = runner.predict_all(_as_float_inputs(model_input))
    return next(iter(outputs.values())) if len(outputs) == 1 else outputs


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def example_batch(tflite_path: str | os.PathLike, rows: int = 2) -> np.ndarray | dict[str, np.ndarray]:
    """A float32 batch of the model's input shape (zeros; a dict keyed by input name for a model with several
    named inputs): the input example, and what the signature is inferred from; real inputs are not needed to
    describe the interface."""
    from edgeopt.components._shared.tflite_runtime import TfliteRunner

    def zeros(detail):
        return np.zeros([rows, *[max(int(size), 1) for size in detail["shape"][1:]]], dtype=np.float32)

    inputs = TfliteRunner(tflite_path).inputs
    if len(inputs) == 1:
        return zeros(next(iter(inputs.values())))
    return {name: zeros(detail) for name, detail in inputs.items()}


def save_model(
    tflite_path: str | os.PathLike,
    path: str | os.PathLike,
    *,
    input_example: np.ndarray | None = None,
    metadata: dict | None = None,
) -> Path:
    """Saves `tflite_path` as an MLflow pyfunc model folder at `path` (which must not exist yet).

    Args:
      tflite_path: the .tflite file (one or several named inputs and outputs).
      path: the model folder to create: MLmodel, artifacts/model.tflite, python_model.pkl, requirements.
      input_example: a float32 batch (default: zeros of the input shape).
      metadata: extra MLmodel metadata; the file's sha256 and the edgeopt version are always recorded.

    Raises:
      TrackingError: the file does not exist or LiteRT cannot run it.
    """
    from mlflow.models import infer_signature

    from edgeopt.components._shared.tflite_runtime import TfliteRunner

    tflite_path = Path(tflite_path)
    if not tflite_path.is_file():
        raise TrackingError(f"{tflite_path} is not a .tflite file; pass the candidate's model.tflite")
    try:
        example = example_batch(tflite_path) if input_example is None else _as_float_inputs(input_example)
        output = _run(TfliteRunner(tflite_path), example)
    except (ValueError, RuntimeError, EdgeoptError) as err:
        raise TrackingError(f"LiteRT cannot run {tflite_path}: {err}") from err
    mlflow.pyfunc.save_model(
        path=str(path),
        python_model=TfliteModel(),
        artifacts={TFLITE_ARTIFACT: str(tflite_path)},
        signature=infer_signature(example, output),
        input_example=example,
        # Listed, not inferred: inference would load the model in a subprocess to watch its imports.
        pip_requirements=[f"edgeopt=={__version__}", "ai-edge-litert", f"numpy=={np.__version__}"],
        metadata={
            "flavor": FLAVOR_NAME,
            "tflite_sha256": sha256_of(tflite_path),
            "edgeopt_version": __version__,
            **(metadata or {}),
        },
    )
    return Path(path)


TAG_TFLITE_SHA256 = "edgeopt.tflite_sha256"


def model_artifact_files(tflite_path, staging_dir, artifact_path: str, metadata: dict | None = None) -> list:
    """Saves the MLflow model under `staging_dir` and lists (file, artifact folder) pairs to log one by one (the
    tracker's spool copies files, not folders), so the run's `artifact_path` holds a loadable MLflow model."""
    folder = save_model(tflite_path, Path(staging_dir) / artifact_path, metadata=metadata)
    return [
        (str(file), "/".join([artifact_path, *file.relative_to(folder).parent.parts]))
        for file in sorted(folder.rglob("*"))
        if file.is_file()
    ]


def version_tags(candidate: dict, job_id: str) -> dict[str, str]:
    """Model-version tags: what the registered file measured, its gate, recipe and sha256 (for deduplication)."""
    from edgeopt.components.tracking import records

    latency = (candidate.get("latency_ms") or {}).get("p50")
    tags = {
        records.TAG_RECIPE: candidate["recipe"],
        records.TAG_JOB_ID: job_id,
        records.TAG_GATE: records.gate_verdict(candidate),
        "tflite_bytes": str(candidate.get("tflite_bytes")),
        "gzip_bytes": str(candidate.get("gzip_bytes")),
        "gzip_ratio": str(candidate.get("gzip_ratio")),
        "accuracy": str(candidate.get("accuracy")),
        "accuracy_drop": str(candidate.get("accuracy_drop")),
        **_metric_tags(candidate),
        "latency_p50_ms": str(latency),
    }
    if candidate.get("tflite_path") and Path(candidate["tflite_path"]).is_file():
        tags[TAG_TFLITE_SHA256] = sha256_of(candidate["tflite_path"])
    return tags


def _metric_tags(candidate: dict) -> dict[str, str]:
    """The task's metric (MAE for a regressor, AUC for a binary model) beside accuracy, which only classifiers have."""
    metric = candidate.get("metric") or {}
    if not metric.get("name"):
        return {}
    return {
        "metric": metric["name"],
        "metric_value": str(metric.get("value")),
        "metric_delta": str(candidate.get("metric_delta")),
    }


def version_description(candidate: dict) -> str:
    steps = "+".join(candidate.get("steps") or [])
    metric = candidate.get("metric") or {"name": "accuracy", "value": candidate.get("accuracy")}
    return (
        f"edgeopt recipe {candidate['recipe']} ({steps}): {candidate.get('tflite_bytes')} bytes, "
        f"{candidate.get('gzip_bytes')} gzip, {metric['name']} {metric.get('value')}, gate passed. "
        "mlflow.pyfunc.load_model(...).predict(float32 batch, or a dict of them by input name) runs it with LiteRT."
    )


def identical_version(client, model_name: str, tflite_sha256: str | None):
    """The existing version of `model_name` whose .tflite has this sha256, else None (registering it again would
    only add a duplicate)."""
    if not tflite_sha256:
        return None
    for version in client.search_model_versions(f"name = '{model_name}'"):
        if (version.tags or {}).get(TAG_TFLITE_SHA256) == tflite_sha256:
            return version
    return None

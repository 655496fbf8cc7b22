"""TFX face of MLflow tracking: `MlflowReporter` logs one pipeline run as one MLflow parent run (tagged tfx and the
TFX pipeline run id) with a child per candidate, and registers the winner (the `selection` rule) as `challenger`."""

import json
import os
import tempfile

from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from edgeopt.components import __version__
from edgeopt.components._shared import tfx_component as face
from edgeopt.components._shared.remote_files import copy_tree, is_remote, local_artifacts
from edgeopt.components.evaluation.selection import SelectionConfig, selection_record
from edgeopt.components.evaluation.tfx_component import METRICS_FILE
from edgeopt.components.recipes.core import report_from_evaluations
from edgeopt.components.tracking.config import TrackingConfig

EVALUATIONS_KEY = "evaluations"
SELECTION_KEY = "selection"


class MlflowReporterSpec(ComponentSpec):
    PARAMETERS = {
        face.TRACKING_KEY: ExecutionParameter(type=str),
        face.COMPONENT_VERSION_KEY: ExecutionParameter(type=str),
        SELECTION_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        EVALUATIONS_KEY: ChannelParameter(type=standard_artifacts.ModelEvaluation),
        face.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        face.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        face.CALIBRATION_KEY: ChannelParameter(type=face.CalibrationData, optional=True),
    }
    OUTPUTS = {}


class MlflowReporterExecutor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802
        with local_artifacts(input_dict, output_dict):  # gs:// URIs on Vertex AI / Kubeflow
            self._do(input_dict, output_dict, exec_properties)

    def _do(self, input_dict, output_dict, exec_properties):
        from edgeopt.components.tracking.mlflow_tracking import tracked_job

        self._log_startup(input_dict, output_dict, exec_properties)
        records = []
        for evaluation in _evaluations(input_dict):
            with open(os.path.join(evaluation.uri, METRICS_FILE)) as handle:
                records.append(json.load(handle))
        report = report_from_evaluations(records, face.single_uri(input_dict, face.MODEL_KEY))
        rule = SelectionConfig.from_json(exec_properties.get(SELECTION_KEY) or "{}")
        report["selection"] = selection_record(report["candidates"], rule)
        manifest = None
        if input_dict.get(face.CALIBRATION_KEY):
            manifest = os.path.join(face.single_uri(input_dict, face.CALIBRATION_KEY), "manifest.json")
        config = TrackingConfig.from_json(exec_properties[face.TRACKING_KEY])
        run_id = self._context.pipeline_run_id if self._context else None
        with tempfile.TemporaryDirectory() as work:
            for index, candidate in enumerate(report["candidates"]):
                if candidate.get("tflite_path") and is_remote(candidate["tflite_path"]):  # the evaluator's record
                    local = os.path.join(work, "candidates", str(index), "model.tflite")
                    copy_tree(candidate["tflite_path"], local)
                    candidate["tflite_path"] = local
            with tracked_job(config, orchestrator="tfx", output_dir=work, orchestrator_run_id=run_id) as job:
                job.log_report(
                    report, examples=face.single_uri(input_dict, face.EXAMPLES_KEY), calibration_manifest=manifest
                )


def _evaluations(input_dict: dict) -> list:
    """The evaluation artifacts, from one union channel (`evaluations`) or one channel each (`evaluations_N`)."""
    keys = sorted(key for key in input_dict if key == EVALUATIONS_KEY or key.startswith(f"{EVALUATIONS_KEY}_"))
    return [artifact for key in keys for artifact in input_dict[key]]


def _spec_with_channels(count: int) -> type:
    """A spec with one evaluation input per evaluator: KubeflowV2DagRunner compiles single channels only, no union."""
    inputs = {key: value for key, value in MlflowReporterSpec.INPUTS.items() if key != EVALUATIONS_KEY}
    for index in range(count):
        inputs[f"{EVALUATIONS_KEY}_{index}"] = ChannelParameter(type=standard_artifacts.ModelEvaluation)
    return type(f"MlflowReporterSpec{count}", (MlflowReporterSpec,), {"INPUTS": inputs})


class MlflowReporter(base_component.BaseComponent):
    """Logs every CompressionEvaluator's result of one pipeline run to MLflow.

    `evaluations` is one channel (e.g. `tfx.types.channel.union([...])`, LocalDagRunner only) or a list of channels
    (also compiles with KubeflowV2DagRunner).

    Example:
      reporter = MlflowReporter(evaluations=[e.outputs["evaluation"] for e in evaluators],
                                model=trainer.outputs["model"], examples=example_gen.outputs["examples"],
                                tracking={"tracking_uri": "http://mlflow:5000", "registered_model_name": "digits"})
    """

    SPEC_CLASS = MlflowReporterSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(MlflowReporterExecutor)

    def __init__(self, evaluations, model, examples, tracking=None, calibration=None, selection=None):
        tracking = face.validated_config(TrackingConfig, tracking)
        selection = face.validated_config(SelectionConfig, selection)
        if isinstance(evaluations, list | tuple):
            spec_class = _spec_with_channels(len(evaluations))
            channels = {f"{EVALUATIONS_KEY}_{index}": channel for index, channel in enumerate(evaluations)}
        else:
            spec_class, channels = MlflowReporterSpec, {EVALUATIONS_KEY: evaluations}
        super().__init__(
            spec=spec_class(
                **channels,
                model=model,
                examples=examples,
                calibration=calibration,
                tracking=tracking.to_json(),
                component_version=__version__,
                selection=selection.to_json(),
            )
        )

"""TFX face of evaluation: `CompressionEvaluator` measures a .tflite candidate against the float .tflite baseline
and emits a ModelBlessing (blessed only when the gate passes) plus a ModelEvaluation holding the numbers."""

import json
import os

from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from edgeopt.components import __version__
from edgeopt.components._shared import tfx_component as face
from edgeopt.components._shared.remote_files import local_artifacts
from edgeopt.components.evaluation.config import EvaluationConfig, GateConfig
from edgeopt.components.evaluation.core import evaluate_tflite, measure_candidate

GATE_KEY = "gate"
EVALUATION_CONFIG_KEY = "evaluation_config"
METRICS_FILE = "metrics.json"
# The blessing convention of TFX's Evaluator, which the standard Pusher reads.
BLESSED_PROPERTY, BLESSED_FILE, NOT_BLESSED_FILE = "blessed", "BLESSED", "NOT_BLESSED"


class CompressionEvaluatorSpec(ComponentSpec):
    PARAMETERS = {
        GATE_KEY: ExecutionParameter(type=str),
        EVALUATION_CONFIG_KEY: ExecutionParameter(type=str),
        **face.DATA_PARAMETERS,
        **face.VERSION_PARAMETERS,
    }
    INPUTS = {
        face.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        face.BASELINE_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        face.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {
        face.BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
        face.EVALUATION_KEY: ChannelParameter(type=standard_artifacts.ModelEvaluation),
    }


class CompressionEvaluatorExecutor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802
        with local_artifacts(input_dict, output_dict) as staged:  # gs:// URIs on Vertex AI / Kubeflow
            self._do(input_dict, output_dict, exec_properties, staged.original)

    def _do(self, input_dict, output_dict, exec_properties, original_uri):
        self._log_startup(input_dict, output_dict, exec_properties)
        gate = GateConfig.from_json(exec_properties[GATE_KEY])
        evaluation_config = EvaluationConfig.from_json(exec_properties[EVALUATION_CONFIG_KEY])
        data = face.training_data(input_dict, exec_properties)
        candidate_artifact = face.single(input_dict, face.MODEL_KEY)
        baseline = evaluate_tflite(
            face.tflite_path(face.single(input_dict, face.BASELINE_MODEL_KEY)), data, evaluation_config
        )
        candidate = evaluate_tflite(face.tflite_path(candidate_artifact), data, evaluation_config)
        record = measure_candidate(candidate, baseline, gate, conversion=_conversion_of(candidate_artifact))
        record["recipe"] = _recipe_name(candidate_artifact)
        record["config"] = json.loads(candidate_artifact.get_string_custom_property("edgeopt_config") or "{}")
        record["steps"] = [step["technique"] for step in record["config"].get("steps", [])]
        record["baseline"] = baseline.to_dict()
        record["tflite_path"] = original_uri(record["tflite_path"])  # where the reporter finds it after this step

        evaluation = face.single(output_dict, face.EVALUATION_KEY)
        with open(os.path.join(evaluation.uri, METRICS_FILE), "w") as handle:
            json.dump(record, handle, indent=2)
        for name in ("tflite_bytes", "gzip_bytes", "size_ratio", "gzip_ratio", "accuracy", "accuracy_drop", "speedup",
                     "metric_delta"):  # fmt: skip
            if record[name] is None:  # a regressor has no accuracy
                continue
            setter = (
                evaluation.set_int_custom_property if name.endswith("bytes") else evaluation.set_float_custom_property
            )
            setter(name, record[name])
        evaluation.set_string_custom_property("metric", record["metric"]["name"])
        evaluation.set_float_custom_property("metric_value", record["metric"]["value"])
        evaluation.set_float_custom_property("latency_p50_ms", record["latency_ms"]["p50"])

        blessing = face.single(output_dict, face.BLESSING_KEY)
        passed = record["gate"]["passed"]
        with open(os.path.join(blessing.uri, BLESSED_FILE if passed else NOT_BLESSED_FILE), "w") as handle:
            handle.write("\n".join(record["gate"]["reasons"]))
        blessing.set_int_custom_property(BLESSED_PROPERTY, int(passed))
        blessing.set_string_custom_property("current_model", original_uri(candidate_artifact.uri))
        blessing.set_int_custom_property("current_model_id", candidate_artifact.id)
        blessing.set_string_custom_property("gate_reasons", json.dumps(record["gate"]["reasons"]))


def _recipe_name(artifact) -> str:
    name = artifact.get_string_custom_property("recipe")
    return name or artifact.producer_component or "candidate"


def _conversion_of(artifact) -> dict:
    conversion = {}
    for key in ("max_abs_diff", "top1_agreement"):
        if artifact.has_custom_property(key):
            conversion[key] = artifact.get_float_custom_property(key)
    return conversion


class CompressionEvaluator(base_component.BaseComponent):
    """Blesses a compressed .tflite when it meets the gate against the float .tflite baseline.

    Example:
      evaluator = CompressionEvaluator(model=optimizer.outputs["output_model"],
                                       baseline_model=exporter.outputs["output_model"],
                                       examples=example_gen.outputs["examples"],
                                       gate={"max_accuracy_drop": 1.0}, module_file="trainer_module.py")
      pusher = tfx.components.Pusher(model=optimizer.outputs["output_model"],
                                     model_blessing=evaluator.outputs["blessing"], push_destination=...)
    """

    SPEC_CLASS = CompressionEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(CompressionEvaluatorExecutor)

    def __init__(
        self,
        model,
        baseline_model,
        examples,
        gate=None,
        evaluation=None,
        *,
        data_spec=None,
        module_file=None,
        tracking=None,
    ):
        gate = face.validated_config(GateConfig, gate)
        evaluation = face.validated_config(EvaluationConfig, evaluation)
        super().__init__(
            spec=CompressionEvaluatorSpec(
                model=model,
                baseline_model=baseline_model,
                examples=examples,
                gate=gate.to_json(),
                evaluation_config=evaluation.to_json(),
                component_version=__version__,
                tracking=tracking,
                blessing=types.Channel(type=standard_artifacts.ModelBlessing),
                evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
                **face.data_source_properties(data_spec, module_file),
            )
        )

"""KFP face of evaluation: `evaluate_and_gate` measures a .tflite candidate against the float .tflite baseline
(and the MLflow champion, when named) and returns whether it passed, for a `dsl.If`."""

from typing import NamedTuple, Optional

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from edgeopt.components._shared.kfp_component import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate_and_gate(
    candidate: Input[Model],
    baseline: Input[Model],
    examples: Input[Dataset],
    metrics: Output[Metrics],
    report: Output[Markdown],
    evaluation: Output[Artifact],
    gate: Optional[dict] = None,
    evaluation_config: Optional[dict] = None,
    data_spec: Optional[dict] = None,
    module_file: str = "",
    champion: Optional[Input[Model]] = None,
) -> NamedTuple("GateOutputs", passed=bool, accuracy=float, gzip_bytes=int):
    """Size, gzip size, accuracy and latency of `candidate`, gated (GateConfig) against `baseline`; the evaluation
    artifact holds the candidate's report.json record. Without `gate`, the recipe's own gate (in the candidate's
    metadata, from `optimize_recipe`) applies. With a `champion` folder holding model.tflite (the MLflow
    champion, fetched upstream), the gate also checks the candidate against it."""
    import json
    from collections import namedtuple

    from edgeopt.components._shared.kfp_runtime import evaluate_in_folder, training_data
    from edgeopt.components.evaluation.config import EvaluationConfig, GateConfig

    record = evaluate_in_folder(
        candidate.path,
        baseline.path,
        training_data(examples.path, data_spec, module_file),
        GateConfig.from_dict(gate if gate is not None else candidate.metadata.get("edgeopt_config", {}).get("gate")),
        EvaluationConfig.from_dict(evaluation_config),
        candidate.metadata,
        champion.path if champion is not None else None,
    )
    with open(evaluation.path, "w") as handle:
        json.dump(record, handle, indent=2)
    evaluation.metadata.update({"recipe": record["recipe"], "passed": record["gate"]["passed"]})
    for name in ("tflite_bytes", "gzip_bytes", "size_ratio", "gzip_ratio", "accuracy", "accuracy_drop", "speedup",
                 "metric_delta"):  # fmt: skip
        if record.get(name) is not None:  # a regressor has no accuracy
            metrics.log_metric(name, record[name])
    metrics.log_metric(record["metric"]["name"], record["metric"]["value"])
    with open(report.path, "w") as handle:
        handle.write(record.pop("markdown"))
    outputs = namedtuple("GateOutputs", ["passed", "accuracy", "gzip_bytes"])
    accuracy = record["accuracy"] if record["accuracy"] is not None else float("nan")
    return outputs(record["gate"]["passed"], accuracy, record["gzip_bytes"])

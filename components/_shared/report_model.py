"""report.json as typed models: the one definition of the contract that the CLI, the library, TFX, KFP and the
search write, and that MLflow logging, `edgeopt compare` and later pipeline steps read.

Producers build plain dicts and pass them through `validate_report` / `validate_candidate` before anything is
written, so a field that drifts fails the job that wrote it, not the step that reads it. The declared fields are the
contract; a candidate or baseline may carry more detail (step records, a search trial's number), which readers must
not rely on. `report_json_schema()` is published as configs/schemas/report.schema.json.
"""

import pydantic


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


class _Open(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")


class Latency(_Model):
    """Single-example latency through the LiteRT interpreter, in milliseconds."""

    p50: float | None = pydantic.Field(description="Median of the timed invocations.")
    p90: float | None = pydantic.Field(None, description="90th percentile of the timed invocations.")


class Metric(_Model):
    """The task's metric as measured on the eval split."""

    name: str = pydantic.Field(description="accuracy, top_k_accuracy, auc, mae, rmse, or the module's metric_fn.")
    higher_is_better: bool = pydantic.Field(description="Direction: MAE and RMSE are better lower.")
    value: float | None = pydantic.Field(description="The measured value.")
    output: str | None = pydantic.Field(None, description="The model output the metric reads (several outputs).")


class GateVerdict(_Model):
    """Whether a candidate met every threshold of its recipe's gate, and each miss."""

    passed: bool = pydantic.Field(description="True when every set threshold was met.")
    reasons: list[str] = pydantic.Field(default_factory=list, description="One line per missed threshold or error.")


class Baseline(_Open):
    """The float TFLite export of the input model: the reference of every ratio."""

    tflite_path: str | None = pydantic.Field(None, description="The float .tflite.")
    tflite_bytes: int = pydantic.Field(description="File size in bytes.")
    gzip_bytes: int = pydantic.Field(description="gzip -9 size: the over-the-air payload.")
    accuracy: float | None = pydantic.Field(None, description="Top-1 accuracy (None for tasks without accuracy).")
    metric: Metric | None = pydantic.Field(None, description="The task's metric.")
    latency_ms: Latency | None = pydantic.Field(None, description="Latency of the float model.")
    max_abs_diff: float | None = pydantic.Field(None, description="Largest |Keras - TFLite| output difference.")
    non_weight_bytes_share: float | None = pydantic.Field(None, description="Share of the file that is not weights.")
    model_path: str | None = pydantic.Field(None, description="The input model (never modified).")
    model_digest: str | None = pydantic.Field(None, description="sha256 of the input model's files.")
    num_eval_examples: int | None = pydantic.Field(None, description="Eval examples behind accuracy and metric.")


class Candidate(_Open):
    """One recipe's result: measured and gated, or failed with the step and the error (its measurements None)."""

    recipe: str = pydantic.Field(description="Recipe name.")
    steps: list[str] = pydantic.Field(default_factory=list, description="Techniques in order, e.g. [prune, quantize].")
    tflite_path: str | None = pydantic.Field(None, description="The candidate .tflite (None when the recipe failed).")
    tflite_bytes: int | None = pydantic.Field(None, description="File size in bytes.")
    gzip_bytes: int | None = pydantic.Field(None, description="gzip -9 size.")
    size_ratio: float | None = pydantic.Field(None, description="Baseline bytes / candidate bytes.")
    gzip_ratio: float | None = pydantic.Field(None, description="Baseline gzip bytes / candidate gzip bytes.")
    accuracy: float | None = pydantic.Field(None, description="Top-1 accuracy (None for tasks without accuracy).")
    accuracy_drop: float | None = pydantic.Field(None, description="Baseline accuracy - candidate accuracy, in points.")
    metric: Metric | None = pydantic.Field(None, description="The task's metric.")
    metric_delta: float | None = pydantic.Field(
        None, description="How much worse than the baseline on the metric (positive = worse; points for fractions)."
    )
    metric_delta_relative: float | None = pydantic.Field(None, description="metric_delta in % of the baseline.")
    latency_ms: Latency | None = pydantic.Field(None, description="Latency of the candidate.")
    speedup: float | None = pydantic.Field(None, description="Baseline p50 / candidate p50, same run, same threads.")
    speedup_significant: bool | None = pydantic.Field(
        None, description="False when the speedup is below the timer's resolution or within the latencies' spread."
    )
    speedup_note: str | None = pydantic.Field(None, description="Why a speedup is not significant.")
    max_abs_diff: float | None = pydantic.Field(None, description="Largest |Keras - TFLite| output difference.")
    top1_agreement: float | None = pydantic.Field(None, description="Share of examples with the same top-1 class.")
    gate: GateVerdict = pydantic.Field(description="The recipe gate's verdict.")
    config: dict | None = pydantic.Field(None, description="The recipe as run (RecipeConfig JSON).")
    step_records: list[dict] = pydantic.Field(default_factory=list, description="Each step's output and result.")
    error: str | None = pydantic.Field(None, description="`Type: message` when the recipe failed.")
    failed_step: str | None = pydantic.Field(None, description="The step folder that failed, e.g. 00_prune.")
    error_type: str | None = pydantic.Field(None, description="The exception type of a failed recipe.")
    error_message: str | None = pydantic.Field(None, description="The whole message of a failed recipe.")
    duplicate_of: int | None = pydantic.Field(
        None, description="Search trials: the earlier trial with the same parameters whose result this one repeats."
    )


class Selection(_Model):
    """The winner rule a job used and the candidate it picked."""

    rule: dict = pydantic.Field(description="SelectionConfig: objective and the pool that may win.")
    winner: str | None = pydantic.Field(description="The winning recipe, None when no candidate may win.")


class Report(_Model):
    """The content of report.json."""

    baseline: Baseline = pydantic.Field(description="The float reference.")
    evaluation: dict = pydantic.Field(
        default_factory=dict, description="EvaluationConfig used for every measurement (pipeline reports: per step)."
    )
    hardware: dict | None = pydantic.Field(
        None, description="What measured the latencies: CPU, ISA flags, threads, runtime versions."
    )
    calibration: dict = pydantic.Field(
        default_factory=dict, description="Where calibration data came from (source, count, data_sha256, ...)."
    )
    candidates: list[Candidate] = pydantic.Field(description="One record per recipe, in the job's order.")
    selection: Selection | None = pydantic.Field(None, description="The winner rule and its pick.")
    champion: dict | None = pydantic.Field(None, description="The registry's champion measured in the same run.")
    non_finite_dropped: dict | None = pydantic.Field(None, description="Examples holding NaN/Inf dropped, per split.")
    input_casts: dict | None = pydantic.Field(None, description="Input dtypes cast to float32, by input.")
    calibration_used: dict | None = pydantic.Field(None, description="Calibration examples asked and used.")
    reused: list | None = pydantic.Field(None, description="Outputs of an earlier run the job reused on purpose.")
    calibration_sweep: list[dict] | None = pydantic.Field(None, description="int8 accuracy per calibration size.")
    search: dict | None = pydantic.Field(None, description="`edgeopt search`: the study, its rule and its winner.")


def validate_report(report: dict) -> dict:
    """Checks a report dict against the contract and returns it unchanged.

    Raises:
      pydantic.ValidationError: a producer wrote a field of the wrong type or an undeclared top-level key.
    """
    Report.model_validate(report)
    return report


def validate_candidate(record: dict) -> dict:
    """Checks one candidate record (a TFX or KFP evaluation step's output) and returns it unchanged."""
    Candidate.model_validate(record)
    return record


def report_json_schema() -> dict:
    """The JSON schema of report.json (published as configs/schemas/report.schema.json)."""
    return Report.model_json_schema()

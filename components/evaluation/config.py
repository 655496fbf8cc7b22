"""EvaluationConfig and GateConfig: how a .tflite is measured, and what it must achieve to ship."""

import pydantic

from edgeopt.components._shared.config_base import StrictConfig


class EvaluationConfig(StrictConfig):
    """Measurement settings for size, accuracy and latency through the LiteRT interpreter."""

    num_threads: pydantic.PositiveInt = pydantic.Field(1, description="Interpreter threads for the latency runs.")
    warmup_runs: int = pydantic.Field(20, ge=0, description="Untimed invocations before timing.")
    timed_runs: pydantic.PositiveInt = pydantic.Field(200, description="Timed single-example invocations.")
    max_eval_examples: pydantic.PositiveInt | None = pydantic.Field(
        None, description="Cap on evaluation examples for accuracy (unset: the whole eval split)."
    )


class GateConfig(StrictConfig):
    """Thresholds a candidate must meet against the float TFLite baseline; unset thresholds are not checked."""

    max_accuracy_drop: float | None = pydantic.Field(
        1.0,
        ge=0,
        description=(
            "Largest accepted accuracy drop, in percentage points, when the metric is accuracy. For any other metric "
            "with neither max_metric_drop nor max_metric_drop_relative set, it applies as a relative degradation "
            "in %."
        ),
    )
    max_metric_drop: float | None = pydantic.Field(
        None,
        ge=0,
        description=(
            "Largest accepted degradation of the task's metric against the baseline, direction-aware (MAE rising "
            "counts): percentage points for accuracy, top_k_accuracy and auc, the metric's units for mae and rmse."
        ),
    )
    max_metric_drop_relative: float | None = pydantic.Field(
        None, ge=0, description="Largest accepted degradation of the task's metric, in % of the baseline's value."
    )
    min_size_ratio: float | None = pydantic.Field(
        None, gt=0, description="Smallest accepted baseline-bytes / candidate-bytes ratio."
    )
    min_gzip_ratio: float | None = pydantic.Field(
        None, gt=0, description="Smallest accepted ratio of gzip sizes (the over-the-air payload)."
    )
    max_latency_ms: float | None = pydantic.Field(None, gt=0, description="Largest accepted p50 latency in ms.")
    champion_max_accuracy_drop: float | None = pydantic.Field(
        0.0,
        ge=0,
        description=(
            "When a champion model is given (e.g. the registry's current champion), the largest accepted accuracy "
            "drop against it in percentage points (for a metric other than accuracy: degradation in % of the "
            "champion's value), both measured on the same eval data in the same run."
        ),
    )

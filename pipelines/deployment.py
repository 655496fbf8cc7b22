"""Deployment settings of the compiled pipelines: resources per step kind, retries, and which step is which kind.

The same numbers feed KFP (task.set_cpu_request ...) and TFX's KubeflowV2DagRunner (ResourceSpec platform config).
"""

import enum

import pydantic

from edgeopt.components._shared.config_base import StrictConfig


class StepKind(enum.StrEnum):
    """How heavy a step is: light (bookkeeping), compute (data, export, evaluation), training (fine-tuning)."""

    LIGHT = "light"
    COMPUTE = "compute"
    TRAINING = "training"


class StepResources(StrictConfig):
    """CPU, memory and accelerator of one kind of step; unset values are left to the cluster's defaults."""

    cpu_request: float | None = pydantic.Field(None, gt=0, description="CPU cores requested (e.g. 0.5).")
    cpu_limit: float | None = pydantic.Field(None, gt=0, description="CPU cores at most.")
    memory_request_gb: float | None = pydantic.Field(None, gt=0, description="Memory requested, in GB.")
    memory_limit_gb: float | None = pydantic.Field(None, gt=0, description="Memory at most, in GB.")
    accelerator_type: str | None = pydantic.Field(
        None, description="Accelerator (KFP: e.g. nvidia.com/gpu or NVIDIA_TESLA_T4 on Vertex AI); unset: none."
    )
    accelerator_count: int = pydantic.Field(
        0, ge=0, description="Accelerators per step; needs accelerator_type when above 0."
    )

    @pydantic.model_validator(mode="after")
    def _accelerator_needs_a_type(self):
        if self.accelerator_count and not self.accelerator_type:
            raise ValueError("accelerator_count > 0 needs accelerator_type (e.g. nvidia.com/gpu)")
        if self.cpu_request and self.cpu_limit and self.cpu_request > self.cpu_limit:
            raise ValueError("cpu_request is above cpu_limit; raise the limit or lower the request")
        if self.memory_request_gb and self.memory_limit_gb and self.memory_request_gb > self.memory_limit_gb:
            raise ValueError("memory_request_gb is above memory_limit_gb; raise the limit or lower the request")
        return self


class StepResourcesByKind(StrictConfig):
    """Resources for each kind of step (which step is which kind: pipelines/deployment.py STEP_KINDS)."""

    light: StepResources = pydantic.Field(
        default_factory=lambda: StepResources(cpu_request=0.5, cpu_limit=1, memory_request_gb=1, memory_limit_gb=2),
        description="Reading data, fetching the champion, selecting the winner, logging to MLflow, pushing.",
    )
    compute: StepResources = pydantic.Field(
        default_factory=lambda: StepResources(cpu_request=1, cpu_limit=2, memory_request_gb=4, memory_limit_gb=8),
        description="Calibration sampling, TFLite export, evaluation (latency runs want whole cores).",
    )
    training: StepResources = pydantic.Field(
        default_factory=lambda: StepResources(cpu_request=2, cpu_limit=4, memory_request_gb=8, memory_limit_gb=16),
        description="Training and recipes with fine-tuning (add an accelerator here for a GPU).",
    )

    def for_kind(self, kind: StepKind) -> StepResources:
        return getattr(self, StepKind(kind).value)


class RetryPolicy(StrictConfig):
    """Retries of a failed step with exponential backoff (KFP task retries)."""

    num_retries: int = pydantic.Field(2, ge=0, le=10, description="Retries after a failed attempt (0: none).")
    backoff_seconds: int = pydantic.Field(30, ge=0, description="Wait before the first retry.")
    backoff_factor: float = pydantic.Field(2.0, ge=1, description="Each further wait is this many times longer.")
    backoff_max_seconds: int = pydantic.Field(600, ge=0, description="Longest wait between two attempts.")


# Step -> kind, by KFP component name and by TFX node id prefix; anything not named is `compute`.
STEP_KINDS = {
    "read-examples": StepKind.LIGHT,
    "fetch-champion": StepKind.LIGHT,
    "select-winner": StepKind.LIGHT,
    "log-to-mlflow": StepKind.LIGHT,
    "train-model": StepKind.TRAINING,
    "optimize-recipe": StepKind.TRAINING,
    "search-model": StepKind.TRAINING,
    "StatisticsGen": StepKind.LIGHT,
    "SchemaGen": StepKind.LIGHT,
    "Push_": StepKind.LIGHT,
    "MlflowReporter": StepKind.LIGHT,
    "Trainer": StepKind.TRAINING,
    "Optimize_": StepKind.TRAINING,
}


def step_kind(name: str) -> StepKind:
    """The kind of a KFP component (by name) or a TFX node (by id; `Optimize_ptq_int8` -> training)."""
    for prefix, kind in STEP_KINDS.items():
        if name == prefix or (prefix.endswith("_") and name.startswith(prefix)):
            return kind
    return StepKind.COMPUTE

"""SearchConfig: a budgeted search over technique chains and their hyperparameters with Optuna."""

import enum

import pydantic

from edgeopt.components._shared.config_base import StrictConfig
from edgeopt.components.clustering.config import CentroidInit
from edgeopt.components.evaluation.config import EvaluationConfig
from edgeopt.components.quantization.config import Granularity, QuantizationMode


class Objective(enum.StrEnum):
    GZIP_BYTES = "gzip_bytes"
    TFLITE_BYTES = "tflite_bytes"
    LATENCY_P50 = "latency_p50"


class ChainFamily(enum.StrEnum):
    """The technique chains a trial may draw; each ends in a quantize step."""

    PTQ = "ptq"
    PRUNE = "prune"
    CLUSTER = "cluster"
    PRUNE_CLUSTER = "prune_cluster"
    DISTILL = "distill"  # a narrower student distilled from the model, then quantized
    DISTILL_PRUNE = "distill_prune"  # the same student, pruned before quantization


#: The families a search draws from unless told: distillation trains a student from scratch (distill_epochs), so
#: its families are opt-in.
DEFAULT_FAMILIES = (ChainFamily.PTQ, ChainFamily.PRUNE, ChainFamily.CLUSTER, ChainFamily.PRUNE_CLUSTER)


#: Quantize modes the search may draw; float16 and whole-model int16x8 keep more bytes than int8 and are left to
#: recipes (aeq_static_int8 trials may keep their most sensitive layers in 16x8: max_int16x8_layers).
SEARCHABLE_MODES = (
    QuantizationMode.FULL_INTEGER,
    QuantizationMode.DYNAMIC_RANGE,
    QuantizationMode.INT4_WEIGHT_ONLY,
    QuantizationMode.INT4_DYNAMIC,
    QuantizationMode.AEQ_STATIC_INT8,
)


class SearchConfig(StrictConfig):
    """What `edgeopt search` explores, what it minimises, and the accuracy budget every winner must meet."""

    max_accuracy_drop: float = pydantic.Field(
        1.0,
        ge=0,
        description=(
            "Budget: largest accepted degradation against the float baseline, read as a recipe gate reads it: points "
            "of accuracy for a classifier, % of the baseline's value for any other metric (MAE, RMSE, AUC)."
        ),
    )
    objectives: list[Objective] = pydantic.Field(
        default_factory=lambda: [Objective.GZIP_BYTES],
        min_length=1,
        max_length=2,
        description=(
            "What to minimise: one objective uses Optuna's TPE sampler, two use NSGA-II. The winner is the trial "
            "within the budget that is smallest on the first objective."
        ),
    )
    trials: pydantic.PositiveInt = pydantic.Field(
        20, description="Total trials in the study, counting trials of earlier runs of the same study (resume)."
    )
    timeout_s: float | None = pydantic.Field(
        None, gt=0, description="Stop starting new trials after this many seconds (null: no limit)."
    )
    seed: int = pydantic.Field(0, description="Seed of the sampler and of every trial's fine-tuning.")
    study_name: str = pydantic.Field(
        "edgeopt-search",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Name of the study in OUT/search.db; rerunning with the same name resumes it.",
    )
    families: list[ChainFamily] = pydantic.Field(
        default_factory=lambda: list(DEFAULT_FAMILIES),
        min_length=1,
        description=(
            "Technique chains to draw from: ptq, prune, cluster, prune_cluster (each ends in quantize), and the opt-in "
            "distill and distill_prune (a student narrowed by width_multipliers, distilled for distill_epochs)."
        ),
    )
    start_from_recipes: list[str] = pydantic.Field(
        default_factory=list,
        description=(
            "Built-in recipes (`edgeopt recipes`) whose chains run as the first trials (Optuna's enqueue_trial): the "
            "winner is then never worse than the best of them within the budget, and TPE starts from known-good "
            "points. Each must be a chain the space draws, with its values inside the space; a resumed study does "
            "not run them again."
        ),
    )
    quantize_modes: list[QuantizationMode] = pydantic.Field(
        default_factory=lambda: [QuantizationMode.FULL_INTEGER, QuantizationMode.INT4_WEIGHT_ONLY],
        min_length=1,
        description=(
            "Final quantize modes to draw from: full_integer, dynamic_range, int4_weight_only, int4_dynamic (int4 "
            "through AI Edge Quantizer, channelwise), aeq_static_int8 (AI Edge Quantizer's static int8, int8 I/O)."
        ),
    )
    dense_granularities: list[Granularity] = pydantic.Field(
        default_factory=lambda: list(Granularity),
        min_length=1,
        description="Dense kernel scale granularities to draw from (per_channel, per_tensor).",
    )
    conv_granularities: list[Granularity] = pydantic.Field(
        default_factory=lambda: list(Granularity),
        min_length=1,
        description=(
            "Conv2D/DepthwiseConv2D kernel scale granularities to draw from; a trial that draws per_tensor has "
            "every kernel per tensor (the TFLite converter's one switch), so its Dense granularity is not drawn."
        ),
    )
    min_sparsity: float = pydantic.Field(0.5, gt=0, lt=1, description="Lowest pruning target sparsity drawn.")
    max_sparsity: float = pydantic.Field(0.95, gt=0, lt=1, description="Highest pruning target sparsity drawn.")
    block_sizes: list[tuple[pydantic.PositiveInt, pydantic.PositiveInt]] = pydantic.Field(
        default_factory=lambda: [(1, 1), (4, 1)],
        min_length=1,
        description="Dense pruning block sizes to draw from ((1, 1) is unstructured).",
    )
    min_layer_weights: list[pydantic.NonNegativeInt] = pydantic.Field(
        default_factory=lambda: [0, 1000, 5000, 20000],
        min_length=1,
        description=(
            "Choices of PruningConfig.min_layer_weights: layers with smaller kernels stay dense (0 prunes them all)."
        ),
    )
    min_clusters: int = pydantic.Field(4, ge=2, le=256, description="Fewest clusters per kernel drawn.")
    max_clusters: int = pydantic.Field(64, ge=2, le=256, description="Most clusters per kernel drawn (log scale).")
    centroid_inits: list[CentroidInit] = pydantic.Field(
        default_factory=lambda: [CentroidInit.KMEANS_PLUS_PLUS, CentroidInit.LINEAR],
        min_length=1,
        description="Cluster centroid initialisations to draw from.",
    )
    min_epochs: pydantic.PositiveInt = pydantic.Field(1, description="Fewest fine-tuning epochs per training step.")
    max_epochs: pydantic.PositiveInt = pydantic.Field(4, description="Most fine-tuning epochs per training step.")
    learning_rates: tuple[float, float] = pydantic.Field(
        (1e-5, 1e-3),
        description="Range of the Adam learning rate drawn (log scale) for each prune and cluster step.",
    )
    width_multipliers: list[float] = pydantic.Field(
        default_factory=lambda: [0.5, 0.75],
        min_length=1,
        description="Student widths a distill trial draws from (DistillationConfig.width_multiplier).",
    )
    distill_epochs: tuple[pydantic.PositiveInt, pydantic.PositiveInt] = pydantic.Field(
        (8, 24), description="Range of the epochs a distill trial trains its student (the student starts untrained)."
    )
    max_qat_epochs: int = pydantic.Field(
        2,
        ge=0,
        description=(
            "Most epochs of a quantization-aware fine-tuning step a prune, cluster or prune_cluster trial that ends "
            "in full_integer may draw (PQAT, CQAT, PCQAT: the zeros and clusters are kept); 0 never adds one."
        ),
    )
    max_float_layers: int = pydantic.Field(
        0,
        ge=0,
        description=(
            "Largest number of the most quantization-sensitive layers a full_integer trial may keep in float "
            "(QuantizationConfig.float_top_k); 0 never keeps any."
        ),
    )
    max_int16x8_layers: int = pydantic.Field(
        0,
        ge=0,
        description=(
            "Largest number of the most quantization-sensitive layers an aeq_static_int8 trial may keep in 16x8 "
            "(QuantizationConfig.int16x8_top_k); 0 never keeps any."
        ),
    )
    requantize_share: float = pydantic.Field(
        0.25,
        ge=0,
        le=1,
        description=(
            "Share of the trials that may quantize the best trial's trained model with the space's other quantize "
            "settings (granularities, modes, layers kept float), each reusing its training: seconds instead of "
            "minutes. The search does it each time a trial becomes the best within the budget. 0 never does."
        ),
    )
    prune_trials_above_drop: float | None = pydantic.Field(
        10.0,
        description=(
            "One objective only: stop a fine-tuning trial when an epoch after its first ends with the Keras model's "
            "eval accuracy more than this many points below the baseline (Optuna's ThresholdPruner on per-epoch "
            "reports); null never stops a trial."
        ),
    )
    evaluation: EvaluationConfig = pydantic.Field(
        default_factory=lambda: EvaluationConfig(timed_runs=50, warmup_runs=5),
        description="How each trial's .tflite is measured (fewer timed runs than optimize's default).",
    )

    @pydantic.model_validator(mode="after")
    def _check_ranges(self):
        if self.min_sparsity > self.max_sparsity:
            raise ValueError(f"min_sparsity {self.min_sparsity} > max_sparsity {self.max_sparsity}; swap them")
        if self.min_clusters > self.max_clusters:
            raise ValueError(f"min_clusters {self.min_clusters} > max_clusters {self.max_clusters}; swap them")
        if self.distill_epochs[0] > self.distill_epochs[1]:
            raise ValueError(f"distill_epochs {list(self.distill_epochs)} must be (fewest, most)")
        if any(not 0 < width <= 1 for width in self.width_multipliers):
            raise ValueError(f"width_multipliers {self.width_multipliers} must lie in (0, 1]")
        low, high = self.learning_rates
        if not 0 < low <= high < 1:
            raise ValueError(f"learning_rates {self.learning_rates} must be (low, high) with 0 < low <= high < 1")
        if self.min_epochs > self.max_epochs:
            raise ValueError(f"min_epochs {self.min_epochs} > max_epochs {self.max_epochs}; swap them")
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objectives repeat: {[o.value for o in self.objectives]}; name each once")
        unsupported = [mode.value for mode in self.quantize_modes if mode not in SEARCHABLE_MODES]
        if unsupported:
            raise ValueError(
                f"quantize_modes {unsupported} are not searched; use full_integer, dynamic_range, an int4 mode or "
                "aeq_static_int8 (run float16 or int16x8 as a fixed recipe)"
            )
        if self.start_from_recipes:
            from edgeopt.components.recipes.config import RecipeConfig
            from edgeopt.components.search.space import recipe_params

            for name in self.start_from_recipes:  # each is a chain of this space: ConfigError names what is not
                recipe_params(RecipeConfig.builtin(name), self)
        return self

"""The search space: which technique chains a trial may be (`suggest_recipe`), what of it a given model can run
(`searchable_config`, `fit_min_layer_weights`), decided once before the study starts, and the trial parameters of a
recipe the search starts from (`recipe_params`)."""

import logging

from edgeopt.components._shared.errors import ConfigError, UnsupportedModelError
from edgeopt.components._shared.support import model_reasons, qat_reasons
from edgeopt.components._shared.tasks import Task
from edgeopt.components.evaluation.config import GateConfig
from edgeopt.components.quantization.config import AEQ_MODES, Granularity, QuantizationMode
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.search.config import ChainFamily, SearchConfig

logger = logging.getLogger(__name__)

#: The QAT scheme that keeps what each family's steps made: zeros, clusters, or both.
QAT_SCHEMES = {
    ChainFamily.PRUNE: "prune_preserve",
    ChainFamily.CLUSTER: "cluster_preserve",
    ChainFamily.PRUNE_CLUSTER: "sparse_cluster_preserve",
}
DISTILL_FAMILIES = (ChainFamily.DISTILL, ChainFamily.DISTILL_PRUNE)
PRUNE_FAMILIES = (ChainFamily.PRUNE, ChainFamily.PRUNE_CLUSTER, ChainFamily.DISTILL_PRUNE)


def suggest_recipe(trial, config: SearchConfig) -> RecipeConfig:
    """Draws one technique chain and its hyperparameters from the search space as a validated RecipeConfig."""
    family = ChainFamily(trial.suggest_categorical("family", [family.value for family in config.families]))
    epochs = lambda name: trial.suggest_int(name, config.min_epochs, config.max_epochs)  # noqa: E731
    rate = lambda name: trial.suggest_float(name, *config.learning_rates, log=True)  # noqa: E731
    steps: list[dict] = []
    if family in DISTILL_FAMILIES:
        # The distill_half_int8 recipe's loss settings; the student's width and training length are searched.
        steps.append(
            {
                "technique": "distill",
                "config": {
                    "student": "width",
                    "width_multiplier": trial.suggest_categorical("width_multiplier", config.width_multipliers),
                    "epochs": trial.suggest_int("distill_epochs", *config.distill_epochs),
                    "alpha": 0.1,
                    "temperature": 4.0,
                    "learning_rate": 1e-3,
                    "seed": config.seed,
                },
            }
        )
    if family in PRUNE_FAMILIES:
        block = trial.suggest_categorical("block_size", [f"{rows}x{cols}" for rows, cols in config.block_sizes])
        sparsity = trial.suggest_float("target_sparsity", config.min_sparsity, config.max_sparsity, step=0.05)
        steps.append(
            {
                "technique": "prune",
                "config": {
                    "target_sparsity": round(sparsity, 4),
                    "block_size": [int(part) for part in block.split("x")],
                    "min_layer_weights": trial.suggest_categorical("min_layer_weights", config.min_layer_weights),
                    "epochs": epochs("prune_epochs"),
                    "learning_rate": rate("prune_learning_rate"),
                    "seed": config.seed,
                },
            }
        )
    if family in (ChainFamily.CLUSTER, ChainFamily.PRUNE_CLUSTER):
        steps.append(
            {
                "technique": "cluster",
                "config": {
                    "number_of_clusters": trial.suggest_int(
                        "clusters", config.min_clusters, config.max_clusters, log=True
                    ),
                    "centroid_init": trial.suggest_categorical(
                        "centroid_init", [i.value for i in config.centroid_inits]
                    ),
                    "preserve_sparsity": family == ChainFamily.PRUNE_CLUSTER,
                    "epochs": epochs("cluster_epochs"),
                    "learning_rate": rate("cluster_learning_rate"),
                    "seed": config.seed,
                },
            }
        )
    mode = trial.suggest_categorical("mode", [mode.value for mode in config.quantize_modes])
    qat_epochs = 0
    if config.max_qat_epochs and mode == QuantizationMode.FULL_INTEGER and family in QAT_SCHEMES:
        # PQAT, CQAT, PCQAT: quantization-aware fine-tuning that keeps the zeros and clusters of the steps before.
        # Not after distillation: QAT fine-tunes on the labels alone and undid the student's distillation in every
        # such MobileNetV2 trial measured (4 of 4 lost 1.95-5.85 pt, against 0.84 pt without it).
        qat_epochs = trial.suggest_int("qat_epochs", 0, config.max_qat_epochs)
    if qat_epochs:
        steps.append({"technique": "qat", "config": {"scheme": QAT_SCHEMES[family], "epochs": qat_epochs,
                                                     "seed": config.seed}})  # fmt: skip
    # A trial's check is its gate on the eval split: a conversion that disagrees with the Keras model is measured
    # and rejected by its accuracy instead of failing, so the sampler learns from it (TPE ignores failed trials).
    quantize: dict = {"mode": mode, "validation": {"min_top1_agreement": 0.0}}
    if QuantizationMode(mode) not in AEQ_MODES and not qat_epochs:  # AEQ and QAT's fake-quant set their own scales
        quantize |= _suggest_granularities(trial, config)
    if config.max_float_layers and mode == QuantizationMode.FULL_INTEGER and not qat_epochs:
        float_top_k = trial.suggest_int("float_top_k", 0, config.max_float_layers)
        if float_top_k:
            quantize["float_top_k"] = float_top_k
    if config.max_int16x8_layers and mode == QuantizationMode.AEQ_STATIC_INT8:
        int16x8_top_k = trial.suggest_int("int16x8_top_k", 0, config.max_int16x8_layers)
        if int16x8_top_k:
            quantize["int16x8_top_k"] = int16x8_top_k
    steps.append({"technique": "quantize", "config": quantize})
    return RecipeConfig(
        name=f"trial_{trial.number:04d}",
        description=f"search trial {trial.number}: {family.value}",
        steps=steps,
        gate=GateConfig(max_accuracy_drop=config.max_accuracy_drop),
    )


def _suggest_granularities(trial, config: SearchConfig) -> dict:
    """Kernel scale granularities of a TFLite-converter quantize step. Per-tensor convolutions pay off after
    clustering (each centroid stays one int8 value, so gzip shrinks the kernel) and drop the 12 bytes of scale and
    zero point per output channel; unclustered depthwise kernels may lose accuracy, which the gate measures."""
    conv = trial.suggest_categorical("conv_granularity", [g.value for g in config.conv_granularities])
    if conv == Granularity.PER_TENSOR:
        return {"conv_granularity": conv, "dense_granularity": Granularity.PER_TENSOR.value}
    dense = trial.suggest_categorical("dense_granularity", [g.value for g in config.dense_granularities])
    return {"dense_granularity": dense}


def searchable_config(config: SearchConfig, inspection, task: Task | None = None) -> tuple[SearchConfig, dict]:
    """The config without what the model cannot run, and {family or "qat": reason} for what was dropped.

    Every family but ptq fine-tunes the model with tfmot; when the model cannot be wrapped (the support check's
    reasons) those families are dropped, or the search is refused when nothing else was asked for. Distillation
    families are dropped for binary and multilabel tasks (distillation refuses them), and QAT steps when tfmot's
    QAT cannot quantize some of the model's layers (a LayerNormalization, for example)."""
    from edgeopt.components.qat.config import QatConfig

    refused: dict[str, str] = {}
    if task in (Task.BINARY, Task.MULTILABEL):
        refused |= {f.value: f"distillation takes classification or regression, not {task.value} tasks"
                    for f in config.families if f in DISTILL_FAMILIES}  # fmt: skip
    blockers = model_reasons(inspection)
    if blockers:
        reason = "; ".join(blockers)
        refused |= {family.value: reason for family in config.families if family != ChainFamily.PTQ}
    kept = [family for family in config.families if family.value not in refused]
    if not kept:
        raise UnsupportedModelError(
            f"the search cannot run any of its families {[f.value for f in config.families]} on {inspection.path}: "
            + "; ".join(sorted(set(refused.values())))
            + ". Add the ptq family (families: [ptq]) to search post-training quantization"
        )
    if refused:
        logger.warning("search families dropped: %s", refused)
        config = config.model_copy(update={"families": kept})
    if kept != [ChainFamily.PTQ] and config.max_qat_epochs:
        qat_blockers = qat_reasons(inspection, QatConfig())
        if qat_blockers:
            logger.warning("trials get no QAT step: %s", "; ".join(qat_blockers))
            config = config.model_copy(update={"max_qat_epochs": 0})
            refused["qat"] = "; ".join(qat_blockers)
    return config, refused


def fit_min_layer_weights(config: SearchConfig, model_path, *, allow_unsafe: bool) -> SearchConfig:
    """The config whose min_layer_weights choices each leave at least one layer to prune: a choice above the
    model's largest Dense/Conv2D kernel would fail every trial that draws it (a choice of 0 is always kept)."""
    if not set(PRUNE_FAMILIES) & set(config.families) or max(config.min_layer_weights) == 0:
        return config
    from edgeopt.components._shared.model_io import load_keras_model
    from edgeopt.components._shared.training import is_prunable_type

    model = load_keras_model(model_path, allow_unsafe=allow_unsafe)
    largest = max((layer.kernel.shape.num_elements() for layer in model.layers if is_prunable_type(layer)), default=0)
    kept = [choice for choice in config.min_layer_weights if choice == 0 or choice <= largest]
    if kept != config.min_layer_weights:
        logger.info("min_layer_weights choices %s: the largest kernel has %d weights", kept, largest)
        config = config.model_copy(update={"min_layer_weights": kept})
    return config


def start_trials(config: SearchConfig) -> dict[str, dict]:
    """{recipe name: trial parameters} of config.start_from_recipes whose family this model can run (the others
    are logged and left out: `searchable_config` may have dropped their family)."""
    start = {}
    for name in config.start_from_recipes:
        recipe = RecipeConfig.builtin(name)
        family = _recipe_values(recipe)["family"]
        if family not in config.families:
            logger.warning("start recipe %s left out: the search does not run its %s family here", name, family)
            continue
        start[name] = recipe_params(recipe, config)
    return start


#: Step settings a trial takes from the search, not from a recipe it starts from.
SEARCH_FIXED_SETTINGS = {"seed", "calibration_examples", "calibration_seed", "validation"}


def recipe_params(recipe: RecipeConfig, config: SearchConfig) -> dict:
    """The trial parameters for which `suggest_recipe` draws `recipe`'s chain, to run it as a first trial.

    suggest_recipe answers from the recipe's own values (Optuna's FixedTrial), so the one definition of the space
    decides which of them a trial draws; each must lie in the space. Settings the search fixes (distillation's
    alpha and temperature, calibration size, seeds) are the search's, not the recipe's."""
    import optuna

    values = _recipe_values(recipe)
    fixed = optuna.trial.FixedTrial(values)
    try:
        drawn = suggest_recipe(fixed, config)
    except ValueError as err:
        raise ConfigError(
            f"start_from_recipes: {recipe.name} is no chain this search draws ({err}); widen the space "
            "(SearchConfig) or leave the recipe out"
        ) from err
    if drawn.technique_chain != recipe.technique_chain:
        raise ConfigError(
            f"start_from_recipes: {recipe.name} is {recipe.technique_chain}, and with these values the search draws "
            f"{drawn.technique_chain} (a qat step needs max_qat_epochs >= its epochs and a full_integer quantize); "
            "leave the recipe out or widen the space"
        )
    for step, drawn_step in zip(recipe.steps, drawn.steps, strict=True):
        mine, theirs = step.config.to_dict(), drawn_step.config.to_dict()
        differ = sorted(key for key in mine.keys() | theirs.keys()
                        if key not in SEARCH_FIXED_SETTINGS and mine.get(key) != theirs.get(key))  # fmt: skip
        if differ:
            recipe_sets = ", ".join(f"{key}={mine.get(key)!r}" for key in differ)
            trials_use = ", ".join(f"{key}={theirs.get(key)!r}" for key in differ)
            raise ConfigError(
                f"start_from_recipes: {recipe.name}'s {step.technique} step sets {recipe_sets}, which the search "
                f"does not draw (its trials use {trials_use}); leave the recipe out"
            )
    for name, value in fixed.params.items():
        distribution = fixed.distributions[name]
        try:
            inside = distribution._contains(distribution.to_internal_repr(value))
        except ValueError:  # a categorical value that is not among the choices
            inside = False
        if not inside:
            raise ConfigError(
                f"start_from_recipes: {recipe.name}'s {name} {value!r} lies outside the search space "
                f"({distribution}); widen the space (SearchConfig) or leave the recipe out"
            )
    return fixed.params


def _recipe_values(recipe: RecipeConfig) -> dict:
    """Every trial parameter a recipe's steps pin, by the names `suggest_recipe` draws them under."""
    steps = {step.technique: step.config for step in recipe.steps}
    chain = tuple(step.technique for step in recipe.steps if step.technique not in ("qat", "quantize"))
    families = {(): ChainFamily.PTQ, ("prune",): ChainFamily.PRUNE, ("cluster",): ChainFamily.CLUSTER,
                ("prune", "cluster"): ChainFamily.PRUNE_CLUSTER, ("distill",): ChainFamily.DISTILL,
                ("distill", "prune"): ChainFamily.DISTILL_PRUNE}  # fmt: skip
    if chain not in families or recipe.steps[-1].technique != "quantize":
        raise ConfigError(
            f"start_from_recipes: {recipe.name} ({recipe.technique_chain}) is no chain the search draws; it draws "
            "[distill] [prune] [cluster] [qat] quantize chains"
        )
    values: dict = {"family": families[chain].value}
    if "distill" in steps:
        values |= {"width_multiplier": steps["distill"].width_multiplier, "distill_epochs": steps["distill"].epochs}
    if "prune" in steps:
        prune = steps["prune"]
        rows, cols = prune.block_size
        values |= {"block_size": f"{rows}x{cols}", "target_sparsity": prune.target_sparsity,
                   "min_layer_weights": prune.min_layer_weights, "prune_epochs": prune.epochs,
                   "prune_learning_rate": prune.learning_rate}  # fmt: skip
    if "cluster" in steps:
        cluster = steps["cluster"]
        values |= {"clusters": cluster.number_of_clusters, "centroid_init": cluster.centroid_init.value,
                   "cluster_epochs": cluster.epochs, "cluster_learning_rate": cluster.learning_rate}  # fmt: skip
    quantize = steps["quantize"]
    values |= {
        "mode": quantize.mode.value,
        "qat_epochs": steps["qat"].epochs if "qat" in steps else 0,
        "conv_granularity": quantize.conv_granularity.value,
        "dense_granularity": quantize.dense_granularity.value,
        "float_top_k": quantize.float_top_k or 0,
        "int16x8_top_k": quantize.int16x8_top_k or 0,
    }
    return values

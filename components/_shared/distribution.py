"""Fine-tuning under tf.distribute: the strategy a config's `distribution` and the environment (TF_CONFIG, visible
GPUs) ask for, created once per process, and which worker of a cluster publishes the outputs.

Every worker of a MultiWorkerMirroredStrategy cluster runs the same program (TensorFlow's model: the collectives of
variable creation, training and saving must match); only the chief's outputs count. A non-chief worker writes into a
private temporary folder that is deleted when it ends (`worker_output_dir`), as TensorFlow's multi-worker guide
recommends for checkpoints and SavedModels.
"""

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from edgeopt.components._shared.errors import ConfigError
from edgeopt.components._shared.fine_tuning_config import Distribution, FineTuningConfig

logger = logging.getLogger(__name__)

TF_CONFIG = "TF_CONFIG"
#: The task types MultiWorkerMirroredStrategy trains with (a TFJob's Chief and Worker replicas).
TRAINING_TASKS = ("chief", "worker")
TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host0:2222", "host1:2222"]}, "task": {"type": "worker", "index": 0}}'
# One strategy per kind and process: MultiWorkerMirroredStrategy configures collective ops once, and a second
# instance would start a second server on the same port.
_STRATEGIES: dict = {}


@dataclasses.dataclass(frozen=True)
class Cluster:
    """TF_CONFIG, parsed: the cluster's task addresses by type and this process's task."""

    tasks: dict[str, list[str]]
    task_type: str
    task_index: int

    @property
    def workers(self) -> int:
        """Processes that train together (chief and workers)."""
        return sum(len(self.tasks.get(task_type, [])) for task_type in TRAINING_TASKS)

    @property
    def is_chief(self) -> bool:
        """The `chief` task, or worker 0 when the cluster has no chief (TensorFlow's rule)."""
        if self.tasks.get("chief"):
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0


def read_cluster(environ: Mapping[str, str] | None = None) -> Cluster | None:
    """The cluster TF_CONFIG describes (as Kubeflow's Training Operator sets it for a TFJob), or None without one.

    Raises:
      ConfigError: TF_CONFIG is not JSON, names no task for this process, or has parameter-server or evaluator
        tasks (edgeopt trains with MultiWorkerMirroredStrategy only).
    """
    raw = (os.environ if environ is None else environ).get(TF_CONFIG, "").strip()
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError as err:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({err}); set it like {TF_CONFIG_EXAMPLE}, or unset it") from err
    cluster = parsed.get("cluster") if isinstance(parsed, dict) else None
    if not cluster:
        return None  # TensorFlow reads a TF_CONFIG without a cluster as a single process
    task = parsed.get("task") or {}
    if not isinstance(cluster, dict) or not isinstance(task, dict) or task.get("type") not in cluster:
        raise ConfigError(
            f"TF_CONFIG names no task of its cluster for this process (task: {task or 'missing'}); set it like "
            f"{TF_CONFIG_EXAMPLE}"
        )
    others = sorted(set(cluster) - set(TRAINING_TASKS))
    if others:
        raise ConfigError(
            f"TF_CONFIG has {others} tasks, but edgeopt fine-tunes with MultiWorkerMirroredStrategy, whose cluster "
            "holds chief and worker tasks only; remove the PS and Evaluator replicas from the TFJob"
        )
    tasks = {task_type: list(addresses) for task_type, addresses in cluster.items()}
    return Cluster(tasks=tasks, task_type=str(task["type"]), task_index=int(task.get("index", 0)))


def is_chief(environ: Mapping[str, str] | None = None) -> bool:
    """True for the process that publishes outputs: the chief of TF_CONFIG's cluster, or any process without one."""
    cluster = read_cluster(environ)
    return cluster is None or cluster.is_chief


def visible_gpus() -> int:
    from edgeopt.components._shared.keras_bootstrap import tf

    return len(tf.config.list_physical_devices("GPU"))


def resolve_distribution(
    requested: Distribution | str, *, environ: Mapping[str, str] | None = None, gpus: int | None = None
) -> Distribution:
    """The strategy kind `requested` means here: `auto` becomes multi_worker when TF_CONFIG describes a cluster of
    more than one worker, mirrored when more than one GPU is visible, else none.

    Raises:
      ConfigError: multi_worker without TF_CONFIG, or mirrored without a visible GPU.
    """
    requested = Distribution(requested)
    if requested == Distribution.NONE:
        return requested
    cluster = read_cluster(environ)
    if requested == Distribution.MULTI_WORKER and cluster is None:
        raise ConfigError(
            "distribution: multi_worker needs TF_CONFIG describing the cluster (Kubeflow's Training Operator sets it "
            f"in every TFJob replica, e.g. {TF_CONFIG_EXAMPLE}); run the step as a TFJob, or use distribution: auto "
            "or none"
        )
    if requested == Distribution.AUTO and cluster is not None and cluster.workers > 1:
        return Distribution.MULTI_WORKER
    if requested == Distribution.MULTI_WORKER:
        return requested
    gpus = visible_gpus() if gpus is None else gpus
    if requested == Distribution.MIRRORED and gpus == 0:
        raise ConfigError(
            "distribution: mirrored needs a visible GPU and TensorFlow sees none (check CUDA_VISIBLE_DEVICES and the "
            "CUDA install); use distribution: auto or none on a CPU machine"
        )
    if requested == Distribution.AUTO:
        return Distribution.MIRRORED if gpus > 1 else Distribution.NONE
    return requested


def strategy_for(kind: Distribution):
    """The tf.distribute strategy of a resolved kind, created once per process (none: the default strategy)."""
    from edgeopt.components._shared.keras_bootstrap import tf

    if kind == Distribution.NONE:
        return tf.distribute.get_strategy()
    if kind not in _STRATEGIES:
        if kind == Distribution.MULTI_WORKER:
            try:
                _STRATEGIES[kind] = tf.distribute.MultiWorkerMirroredStrategy()
            except RuntimeError as err:  # "Collective ops must be configured at program startup"
                raise ConfigError(
                    "MultiWorkerMirroredStrategy must be created before TensorFlow runs its first operation (it "
                    "configures collective ops at program startup), and this process has already read data or "
                    "loaded a model; call edgeopt.components._shared.distribution.start_distribution(configs) first "
                    "thing in the program (`edgeopt optimize` does), or use distribution: none"
                ) from err
        elif kind == Distribution.MIRRORED:
            _STRATEGIES[kind] = tf.distribute.MirroredStrategy()
        else:
            raise ValueError(f"resolve {kind} with resolve_distribution first")
    return _STRATEGIES[kind]


def start_distribution(configs: Iterable) -> list[Distribution]:
    """Resolves the `distribution` of every fine-tuning config in `configs` (others are ignored) and creates the
    MultiWorkerMirroredStrategy now when one needs it: TensorFlow configures its collective ops only before the
    first operation runs, so a program reading data or loading a model first must call this before.

    Returns the resolved kinds, in order. Raises ConfigError as `resolve_distribution` does, before any work.
    """
    kinds = [resolve_distribution(c.distribution) for c in configs if isinstance(c, FineTuningConfig)]
    if Distribution.MULTI_WORKER in kinds:
        strategy = strategy_for(Distribution.MULTI_WORKER)
        logger.info("multi-worker fine-tuning: %d replicas in sync", strategy.num_replicas_in_sync)
    return kinds


@dataclasses.dataclass(frozen=True)
class DistributionRecord:
    """How a fine-tuning step was distributed, as its result records it."""

    distribution: str  # the resolved kind (none, mirrored, multi_worker), or caller: the caller's own scope
    strategy: str  # the tf.distribute class
    replicas: int  # replicas in sync (devices over all workers)
    workers: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@contextlib.contextmanager
def training_scope(config: FineTuningConfig) -> Iterator[DistributionRecord]:
    """Runs the block (load, wrap, compile, fit) inside the scope of the strategy `config.distribution` resolves to,
    and yields what the step's result records. A caller already inside a strategy's scope keeps its strategy.

    Raises:
      ConfigError: as `resolve_distribution`, or a multi_worker strategy created too late (see `strategy_for`).
    """
    from edgeopt.components._shared.keras_bootstrap import tf

    if tf.distribute.has_strategy():
        strategy, kind = tf.distribute.get_strategy(), "caller"
    else:
        kind = resolve_distribution(config.distribution)
        strategy = strategy_for(kind)
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    cluster = read_cluster() if multi_worker else None
    record = DistributionRecord(
        distribution=str(kind),
        # tf.distribute.MultiWorkerMirroredStrategy's class is named CollectiveAllReduceStrategy: say the public name
        strategy="MultiWorkerMirroredStrategy" if multi_worker else type(strategy).__name__.lstrip("_"),
        replicas=int(strategy.num_replicas_in_sync),
        workers=cluster.workers if cluster else 1,
    )
    if record.replicas > 1:
        logger.info("fine-tuning under %s: %d replicas, %d worker(s)", record.strategy, record.replicas, record.workers)
    with strategy.scope():
        yield record


def distribute_options(dataset):
    """The training dataset with the auto-shard policy multi-worker training needs.

    DATA: every worker reads every file and keeps every n-th batch. FILE sharding would give each worker whole files,
    which fails or unbalances the replicas when a split has fewer files than workers (a single-shard ExampleGen
    output is common), and with it the workers' step counts would differ and the collectives would hang. DATA needs
    every worker to see the same order: the stream is seeded with the config's seed.
    """
    from edgeopt.components._shared.keras_bootstrap import tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


@contextlib.contextmanager
def worker_output_dir(output_dir: str | os.PathLike, environ: Mapping[str, str] | None = None) -> Iterator[Path]:
    """Yields `output_dir` on the chief; on any other worker a private temporary folder, deleted when the block
    ends, so the worker runs the same program (saving may need collectives) but nothing it writes can pass for the
    result."""
    if is_chief(environ):
        yield Path(output_dir)
        return
    private = Path(tempfile.mkdtemp(prefix="edgeopt-worker-"))
    logger.info("not the chief: writing into %s (deleted at the end), not %s", private, output_dir)
    try:
        yield private
    finally:
        shutil.rmtree(private, ignore_errors=True)

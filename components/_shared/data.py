"""Training and evaluation input: tf.Example records in the TFX Examples layout, read through a declarative data
spec (dense numeric features, no code) or a user's TFX-style module file with `input_fn(file_pattern, batch_size)`.

Every split is streamed from its files, never held in memory whole: fine-tuning reads a shuffled, repeated tf.data
pipeline; evaluation, validation and calibration read numpy batches, the first n examples or a seeded sample."""

import glob
import importlib.util
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeopt.components._shared.data_spec import DataSpec, dataset_from_spec
from edgeopt.components._shared.distribution import distribute_options
from edgeopt.components._shared.errors import ConfigError, DataError
from edgeopt.components._shared.keras_bootstrap import tf
from edgeopt.components._shared.streaming import (
    FiniteBatches,
    Inputs,
    cleaning,
    first_examples,
    uniform_sample,
)
from edgeopt.components._shared.tasks import Task, TaskSpec, make_task_spec

SPLIT_PREFIX = "Split-"
# Examples parsed per tf.Example batch while streaming (not the training batch size).
READ_BATCH = 256
# Calibration samples come from the first this many examples (of a seeded shard order) or the whole smaller split.
MIN_CALIBRATION_SCAN = 20_000


def split_files(examples: str | os.PathLike, split: str) -> list[str]:
    """Files of one split: `examples/Split-NAME/*` (TFX layout), or `examples` itself when it is a file or glob."""
    examples = str(examples)
    if os.path.isdir(examples):
        folder = os.path.join(examples, f"{SPLIT_PREFIX}{split}")
        if not os.path.isdir(folder):
            found = sorted(p.name for p in Path(examples).glob(f"{SPLIT_PREFIX}*"))
            raise DataError(
                f"{examples} has no {SPLIT_PREFIX}{split}/ folder (found {found}); pass the Examples folder"
            )
        files = sorted(glob.glob(os.path.join(folder, "*")))
    else:
        files = sorted(glob.glob(examples))
    if not files:
        raise DataError(f"no files for split '{split}' under {examples}")
    return files


def load_module(module_file: str | os.PathLike):
    """Imports a TFX-style module: a file path, or an importable module name (e.g. `mypackage.trainer_module`,
    which also resolves inside a container image)."""
    module_file = str(module_file)
    if is_module_name(module_file):
        try:
            return importlib.import_module(module_file)
        except ImportError as err:
            raise DataError(f"cannot import module {module_file}: {err}") from err
    path = Path(module_file)
    if not path.is_file():
        raise DataError(f"module file {module_file} does not exist")
    spec = importlib.util.spec_from_file_location(f"edgeopt_user_module_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_module_input_fn(module_file: str | os.PathLike) -> Callable:
    """`input_fn(file_pattern, batch_size)` of a TFX-style module (see `load_module`)."""
    input_fn = getattr(load_module(module_file), "input_fn", None)
    if not callable(input_fn):
        raise DataError(f"{module_file} defines no input_fn(file_pattern, batch_size); add one as in a Trainer module")
    return input_fn


def module_task_spec(module, module_file: str) -> TaskSpec:
    """The task a module declares: optional TASK, METRIC, OUTPUT and TOP_K constants, or `metric_fn(y_true, y_pred)`
    with METRIC_HIGHER_IS_BETTER, and an optional `loss_fn(y_true, y_pred)` for fine-tuning."""
    metric_fn = getattr(module, "metric_fn", None)
    loss_fn = getattr(module, "loss_fn", None)
    for name, value in (("metric_fn", metric_fn), ("loss_fn", loss_fn)):
        if value is not None and not callable(value):
            raise DataError(f"{module_file}: {name} must be a function ({name}(y_true, y_pred)), got {value!r}")
    return make_task_spec(
        getattr(module, "TASK", None),
        getattr(module, "METRIC", None),
        output=getattr(module, "OUTPUT", None),
        top_k=int(getattr(module, "TOP_K", 5)),
        metric_fn=metric_fn,
        higher_is_better=getattr(module, "METRIC_HIGHER_IS_BETTER", None),
        loss_fn=loss_fn,
        source=f"module {module_file}",
    )


def keras_inputs(keras_model, inputs: Inputs) -> Inputs:
    """What the Keras model's call takes: a dict narrowed to its input names (a TFX input_fn may yield more
    features), or a single-input model's array."""
    if not isinstance(inputs, dict):
        return inputs
    names = list(keras_model.input_names)
    if len(names) == 1 and len(inputs) == 1:
        return next(iter(inputs.values()))
    missing = [name for name in names if name not in inputs]
    if missing:
        raise DataError(f"the model needs inputs {missing}, which the data does not give (it has {list(inputs)})")
    return {name: inputs[name] for name in names}


def is_module_name(module_file: str) -> bool:
    """`a.b.c` names a module; anything with a path separator or a .py suffix names a file."""
    return "/" not in module_file and os.sep not in module_file and not module_file.endswith(".py")


@dataclass(frozen=True)
class TrainingData:
    """Where fine-tuning, calibration and evaluation read their examples from, as streams.

    `dataset_from_files(files, batch_size, seed)` returns one epoch of batched (inputs, label) pairs read from
    tf.Example files, through the data spec or the user's input_fn (with a seed: the files in a seeded order, read
    interleaved where the data spec parses them); splits are `examples/Split-NAME/`. Inputs are one tensor, or a dict
    keyed by the model's input names. `task` says how predictions are scored and which output is read.
    """

    examples: str
    dataset_from_files: Callable[..., "tf.data.Dataset"]
    train_split: str
    eval_split: str
    description: str
    task: TaskSpec = field(default_factory=TaskSpec)
    non_finite: str = "drop"  # NaN/Inf examples: "drop" (counted in dropped_non_finite) or "fail" (DataError)
    dropped_non_finite: dict = field(default_factory=dict, compare=False, repr=False)  # per split, after a full pass
    _split_sizes: dict = field(default_factory=dict, compare=False, repr=False)

    def file_batches(
        self, files: list[str], what: str, *, batch_size: int = READ_BATCH, seed: int | None = None, whole=False
    ) -> FiniteBatches:
        """(inputs, labels) numpy batches of tf.Example files, e.g. a calibration artifact's records, parsed like the
        splits, without the non-finite examples (see FiniteBatches; `whole`: the caller reads every batch)."""
        return FiniteBatches(
            self._read_errors(self.dataset_from_files(files, batch_size, seed=seed), what),
            policy=self.non_finite,
            what=what,
            fail_at_end=whole,
        )

    def _read_errors(self, dataset, what: str):
        try:
            yield from dataset
        except tf.errors.OpError as err:
            raise DataError(f"cannot read {what} from {self.description}: {err.message}") from err

    def batches(
        self, split: str, *, batch_size: int = READ_BATCH, limit: int | None = None, seed: int | None = None
    ) -> Iterator[tuple[Inputs, np.ndarray]]:
        """The split as numpy batches in file order (a seeded shard order with `seed`), at most `limit` examples.
        A complete pass records the split's size and dropped non-finite examples."""
        files = split_files(self.examples, split)
        stream = self.file_batches(files, f"split '{split}'", batch_size=batch_size, seed=seed, whole=limit is None)
        if limit is not None:
            yield from _limited(stream, limit)
            return
        yield from stream
        self._split_sizes[split] = stream.examples
        self.dropped_non_finite[split] = stream.dropped

    def take(self, split: str, limit: int) -> tuple[Inputs, np.ndarray]:
        """The first `limit` examples of a split (fewer when it is smaller): validation inputs, output checks."""
        return first_examples(self.batches(split, limit=limit), limit)

    def sample(self, split: str, size: int, seed: int) -> Inputs:
        """A seeded uniform sample of `size` examples (the calibration set), drawn from the first
        max(MIN_CALIBRATION_SCAN, 20 * size) examples of a seeded shard order: the whole split when it is smaller,
        a bounded read when it is large."""
        scan = max(MIN_CALIBRATION_SCAN, 20 * size)
        return uniform_sample(self.batches(split, limit=scan, seed=seed), size, seed)

    def split_size(self, split: str) -> int:
        """Finite examples in a split, from one counting pass over its files (cached for the job)."""
        if split not in self._split_sizes:
            for _ in self.batches(split):
                pass
        return self._split_sizes[split]

    def steps_per_epoch(self, batch_size: int, configured: int | None = None) -> int:
        """Batches in one training epoch: `configured` when given, else counted from the training split."""
        return configured or int(np.ceil(self.split_size(self.train_split) / batch_size))

    def training_dataset(
        self, batch_size: int, *, seed: int, shuffle_buffer: int, annotate=None, cache_file: str | None = None
    ) -> "tf.data.Dataset":
        """The training split as an endless stream of batches: shards interleaved in a seeded order, cleaned (see
        `streaming.cleaning`), shuffled through a buffer of `shuffle_buffer` examples (reshuffled every epoch),
        repeated, batched and prefetched. Memory depends on the buffer and the batch, not on the split.

        `annotate` maps each cleaned read batch (inputs, labels) to a new (inputs, targets) before the shuffle (e.g.
        a teacher's outputs); `cache_file` keeps the annotated examples in files at that path after the first
        epoch, so an expensive `annotate` runs once.
        """
        files = split_files(self.examples, self.train_split)
        integer_labels = self.task.task == Task.CLASSIFICATION
        batches = self.dataset_from_files(files, READ_BATCH, seed=seed).map(
            cleaning(self.non_finite, integer_labels=integer_labels)
        )
        if annotate is not None:
            batches = batches.map(annotate)
        examples = batches.unbatch()
        if cache_file is not None:
            examples = examples.cache(cache_file)
        examples = examples.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
        return distribute_options(examples.batch(batch_size).prefetch(tf.data.AUTOTUNE))


def _limited(batches, limit: int):
    held = 0
    for inputs, labels in batches:
        if held >= limit:
            return
        yield inputs, labels
        held += len(labels)


def check_one_data_source(data_spec, module_file) -> None:
    """The one rule of every face: the training input comes from exactly one of a data spec or a module file
    (an empty value, as KFP passes for an unset parameter, counts as absent).

    Raises:
      ConfigError: neither or both.
    """
    if bool(data_spec) == bool(module_file):
        raise ConfigError(
            "pass exactly one of data_spec (a DataSpec: YAML path, dict or object) or module_file (a Trainer-style "
            "module with input_fn, as a file or an import name)"
        )


def load_training_data(
    examples: str | os.PathLike,
    *,
    data_spec: DataSpec | str | os.PathLike | None = None,
    module_file: str | os.PathLike | None = None,
    train_split: str | None = None,
    eval_split: str | None = None,
) -> TrainingData:
    """Builds the TrainingData for an Examples folder from exactly one of a data spec or a module file.

    Raises:
      ConfigError: neither or both of data_spec and module_file.
      DataError: missing splits, unreadable files, or an input_fn that returns an endless dataset.
    """
    check_one_data_source(data_spec, module_file)
    if data_spec is not None:
        spec = data_spec if isinstance(data_spec, DataSpec) else DataSpec.from_yaml(data_spec)
        train_split = train_split or spec.train_split
        eval_split = eval_split or spec.eval_split
        task = spec.task_spec()

        def dataset_from_files(files, batch_size, seed=None):
            return dataset_from_spec(spec, files, batch_size, seed=seed)

        description = f"{examples} (data spec)"
    else:
        module = load_module(module_file)
        input_fn = getattr(module, "input_fn", None)
        if not callable(input_fn):
            raise DataError(
                f"{module_file} defines no input_fn(file_pattern, batch_size); add one as in a Trainer module"
            )
        task = module_task_spec(module, str(module_file))
        train_split = train_split or "train"
        eval_split = eval_split or "eval"

        def dataset_from_files(files, batch_size, seed=None):
            if seed is not None:  # the input_fn reads the files as given: a seeded order
                files = [files[index] for index in np.random.default_rng(seed).permutation(len(files))]
            dataset = input_fn(files, batch_size)
            if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
                raise DataError(
                    f"input_fn in {module_file} returned an endless dataset; return one epoch (num_epochs=1), "
                    "edgeopt repeats it as its schedules need"
                )
            return dataset

        description = f"{examples} (input_fn from {module_file})"
    return TrainingData(str(examples), dataset_from_files, train_split, eval_split, description, task)

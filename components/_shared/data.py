"""Training and evaluation input: tf.Example records in the TFX Examples layout, read through a declarative data
spec (dense numeric features, no code) or a user's TFX-style module file with `input_fn(file_pattern, batch_size)`."""

import enum
import glob
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydantic

from edgeopt.components._shared.config_base import StrictConfig
from edgeopt.components._shared.errors import ConfigError, DataError
from edgeopt.components._shared.finite import drop_non_finite
from edgeopt.components._shared.keras_bootstrap import tf
from edgeopt.components._shared.tasks import Metric, Task, TaskSpec, make_task_spec

SPLIT_PREFIX = "Split-"

# Model inputs as numpy: one array for a single-input model, or one array per Keras input name.
Inputs = np.ndarray | dict[str, np.ndarray]


class FeatureDtype(enum.StrEnum):
    FLOAT32 = "float32"
    INT64 = "int64"


class FeatureSpec(StrictConfig):
    """One dense feature of the tf.Example records."""

    key: str = pydantic.Field(min_length=1, description="Feature name in the tf.Example.")
    shape: list[pydantic.PositiveInt] = pydantic.Field(
        min_length=1, description="Shape of one example's value, without the batch dimension, e.g. [64]."
    )
    dtype: FeatureDtype = pydantic.Field(FeatureDtype.FLOAT32, description="Stored type: float32 or int64.")
    input: str | None = pydantic.Field(
        None,
        min_length=1,
        description=(
            "Name of the Keras model input this feature feeds (models with several named inputs). Set it on every "
            "feature or on none; features sharing an input are flattened and concatenated in order."
        ),
    )


class DataSpec(StrictConfig):
    """How to turn tf.Example records into (model input, label) pairs without writing code."""

    features: list[FeatureSpec] = pydantic.Field(
        min_length=1,
        description="Dense features, concatenated in this order along the last axis (or grouped by their `input`).",
    )
    label_key: str = pydantic.Field(min_length=1, description="Label feature: class id, 0/1, one-hot or float target.")
    label_dtype: FeatureDtype = pydantic.Field(
        FeatureDtype.INT64, description="Stored label type: int64 (class ids, 0/1) or float32 (regression, one-hot)."
    )
    label_shape: list[pydantic.PositiveInt] = pydantic.Field(
        default_factory=list,
        description="Shape of one label without the batch dimension: [] for a scalar, [10] for one-hot or multilabel.",
    )
    task: Task | None = pydantic.Field(
        None,
        description="classification, binary, multilabel or regression (unset: classification, integer or one-hot "
        "labels); it picks the fine-tuning loss and the metrics that apply.",
    )
    metric: Metric | None = pydantic.Field(
        None,
        description="accuracy, top_k_accuracy, auc, mae or rmse (unset: accuracy; auc for multilabel; mae for "
        "regression). Gates and the winner rule use it.",
    )
    top_k: pydantic.PositiveInt = pydantic.Field(5, description="k of top_k_accuracy.")
    output: str | None = pydantic.Field(
        None,
        min_length=1,
        description="Model output the metric reads and fine-tuning trains, by Keras output name (unset: the only "
        "output; a model with several must name one).",
    )
    input_shape: list[pydantic.PositiveInt] | None = pydantic.Field(
        None, description="Reshape the concatenated features to the model's input shape (no batch), e.g. [8, 8, 1]."
    )
    scale: float = pydantic.Field(1.0, gt=0, description="Multiply the features by this factor (e.g. 1/255).")
    train_split: str = pydantic.Field("train", description="Split folder (Split-NAME) used for fine-tuning.")
    eval_split: str = pydantic.Field("eval", description="Split folder used for the metric and validation.")

    @pydantic.model_validator(mode="after")
    def _check_consistency(self):
        keys = [feature.key for feature in self.features]
        if len(set(keys)) != len(keys):
            raise ValueError(f"feature keys must be unique, got {keys}")
        if self.label_key in keys:
            raise ValueError(f"label_key '{self.label_key}' is also listed as a feature; list it only as label_key")
        named = [feature.input is not None for feature in self.features]
        if any(named) and not all(named):
            unnamed = [feature.key for feature in self.features if feature.input is None]
            raise ValueError(f"features {unnamed} have no `input`; name the model input of every feature, or of none")
        if any(named) and self.input_shape is not None:
            raise ValueError(
                "input_shape reshapes one concatenated input; with named inputs, give each feature its shape"
            )
        self.task_spec()  # raises on a metric that does not fit the task
        if self.input_shape is not None:
            flat = sum(int(np.prod(feature.shape)) for feature in self.features)
            if int(np.prod(self.input_shape)) != flat:
                raise ValueError(
                    f"input_shape {self.input_shape} holds {int(np.prod(self.input_shape))} values but the features "
                    f"hold {flat}; make their products equal"
                )
        return self

    def task_spec(self) -> TaskSpec:
        return make_task_spec(self.task, self.metric, output=self.output, top_k=self.top_k, source="data spec")

    @property
    def input_names(self) -> list[str]:
        """Model input names in first-seen order; empty for the single concatenated input."""
        return list(dict.fromkeys(feature.input for feature in self.features if feature.input is not None))


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


def _record_dataset(files: list[str]) -> "tf.data.Dataset":
    compression = "GZIP" if files[0].endswith(".gz") else ""
    return tf.data.TFRecordDataset(files, compression_type=compression)


def dataset_from_spec(spec: DataSpec, files: list[str], batch_size: int) -> "tf.data.Dataset":
    """One epoch of batched (features, label) from tf.Example files, parsed as the spec says."""
    feature_map = {
        feature.key: tf.io.FixedLenFeature(
            feature.shape, tf.float32 if feature.dtype == FeatureDtype.FLOAT32 else tf.int64
        )
        for feature in spec.features
    }
    label_type = tf.float32 if spec.label_dtype == FeatureDtype.FLOAT32 else tf.int64
    feature_map[spec.label_key] = tf.io.FixedLenFeature(spec.label_shape, label_type)

    def concatenated(parsed, features, batch):
        if len(features) == 1:  # one feature per input keeps its own shape (e.g. [8, 8, 1])
            return tf.cast(parsed[features[0].key], tf.float32) * spec.scale
        parts = [tf.reshape(tf.cast(parsed[f.key], tf.float32), [batch, -1]) for f in features]
        return tf.concat(parts, axis=-1) * spec.scale

    def to_pair(serialized):
        parsed = tf.io.parse_example(serialized, feature_map)
        batch = tf.shape(serialized)[0]
        if spec.input_names:
            inputs = {
                name: concatenated(parsed, [f for f in spec.features if f.input == name], batch)
                for name in spec.input_names
            }
            return inputs, parsed[spec.label_key]
        parts = [tf.reshape(tf.cast(parsed[f.key], tf.float32), [batch, -1]) for f in spec.features]
        inputs = tf.concat(parts, axis=-1) * spec.scale
        if spec.input_shape is not None:
            inputs = tf.reshape(inputs, [batch, *spec.input_shape])
        return inputs, parsed[spec.label_key]

    return _record_dataset(files).batch(batch_size).map(to_pair)


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


def count(inputs: Inputs) -> int:
    """Number of examples in one array or a dict of arrays."""
    return len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)


def select(inputs: Inputs, index) -> Inputs:
    """The examples at `index` (a slice or index array) of one array or of every array of a dict."""
    if isinstance(inputs, dict):
        return {name: array[index] for name, array in inputs.items()}
    return inputs[index]


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


def _as_numpy(batch) -> Inputs:
    if isinstance(batch, dict):
        return {str(name): np.asarray(value) for name, value in batch.items()}
    if isinstance(batch, list | tuple):
        raise DataError(
            "input_fn yielded a tuple or list of features; yield one tensor, or a dict keyed by the model's input names"
        )
    return np.asarray(batch)


def _concatenate(batches: list[Inputs]) -> Inputs:
    if isinstance(batches[0], dict):
        return {name: np.concatenate([batch[name] for batch in batches]) for name in batches[0]}
    return np.concatenate(batches)


def _labels(batches: list[np.ndarray]) -> np.ndarray:
    labels = np.concatenate(batches)
    # Scalar labels, also those a TFX feature-spec input_fn yields as [batch, 1], become one value per example.
    return labels.reshape(-1) if labels.ndim <= 1 or int(np.prod(labels.shape[1:])) == 1 else labels


def is_module_name(module_file: str) -> bool:
    """`a.b.c` names a module; anything with a path separator or a .py suffix names a file."""
    return "/" not in module_file and os.sep not in module_file and not module_file.endswith(".py")


@dataclass(frozen=True)
class TrainingData:
    """Where fine-tuning, calibration and evaluation read their examples from.

    `dataset_from_files(files, batch_size)` returns one epoch of batched (inputs, label) pairs read from tf.Example
    files, through the data spec or the user's input_fn; splits are `examples/Split-NAME/`. Inputs are one tensor,
    or a dict keyed by the model's input names. `task` says how predictions are scored and which output is read.
    """

    examples: str
    dataset_from_files: Callable[[list[str], int], "tf.data.Dataset"]
    train_split: str
    eval_split: str
    description: str
    task: TaskSpec = field(default_factory=TaskSpec)
    _arrays_cache: dict = field(default_factory=dict, compare=False, repr=False)
    non_finite: str = "drop"  # NaN/Inf examples: "drop" (counted in dropped_non_finite) or "fail" (DataError)
    dropped_non_finite: dict = field(default_factory=dict, compare=False, repr=False)

    def make_dataset(self, split: str, batch_size: int) -> "tf.data.Dataset":
        return self.dataset_from_files(split_files(self.examples, split), batch_size)

    def arrays(self, split: str) -> tuple[Inputs, np.ndarray]:
        """The whole split as numpy (inputs, labels), read once; fine-tuning, calibration and evaluation share it."""
        if split not in self._arrays_cache:
            inputs, labels = self.arrays_from_files(split_files(self.examples, split), f"split '{split}'")
            what = f"split '{split}' of {self.description}"
            *arrays, self.dropped_non_finite[split] = drop_non_finite(inputs, labels, policy=self.non_finite, what=what)
            self._arrays_cache[split] = tuple(arrays)
        return self._arrays_cache[split]

    def arrays_from_files(self, files: list[str], what: str = "") -> tuple[Inputs, np.ndarray]:
        """(inputs, labels) of tf.Example files, e.g. a calibration artifact's records, parsed like the splits."""
        what = what or ", ".join(files)
        inputs, labels = [], []
        try:
            for batch_inputs, batch_labels in self.dataset_from_files(files, 256):
                inputs.append(_as_numpy(batch_inputs))
                labels.append(np.asarray(batch_labels))
        except tf.errors.OpError as err:
            raise DataError(f"cannot read {what} from {self.description}: {err.message}") from err
        if not inputs:
            raise DataError(f"{what} of {self.description} is empty")
        return _concatenate(inputs), _labels(labels)

    def steps_per_epoch(self, batch_size: int) -> int:
        """Real number of batches in one training epoch, so schedules are derived from it rather than guessed."""
        return int(np.ceil(len(self.arrays(self.train_split)[1]) / batch_size))

    def training_labels(self, labels: np.ndarray) -> np.ndarray:
        """Labels as Keras losses want them: float for binary, multilabel and regression targets."""
        if self.task.task == Task.CLASSIFICATION and labels.ndim == 1:
            return labels
        return labels.astype(np.float32)


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

        def dataset_from_files(files, batch_size):
            return dataset_from_spec(spec, files, batch_size)

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

        def dataset_from_files(files, batch_size):
            dataset = input_fn(files, batch_size)
            if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
                raise DataError(
                    f"input_fn in {module_file} returned an endless dataset; return one epoch (num_epochs=1), "
                    "edgeopt repeats it as its schedules need"
                )
            return dataset

        description = f"{examples} (input_fn from {module_file})"
    return TrainingData(str(examples), dataset_from_files, train_split, eval_split, description, task)

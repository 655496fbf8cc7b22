"""The declarative data spec: which dense features of the tf.Example records feed which model input, the label, the
task and the splits, parsed with tf.io (no user code runs)."""

import enum

import numpy as np
import pydantic

from edgeopt.components._shared.config_base import StrictConfig
from edgeopt.components._shared.keras_bootstrap import tf
from edgeopt.components._shared.tasks import Metric, Task, TaskSpec, make_task_spec

INTERLEAVED_SHARDS = 8  # files read at once when streaming for training


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


def record_dataset(files: list[str], *, seed: int | None = None) -> "tf.data.Dataset":
    """The serialized records of `files` (gzipped when they end in .gz): in order; or, with a `seed`, the files in a
    seeded order and read interleaved, so a shuffle buffer sees examples of many shards at once."""
    compression = "GZIP" if files[0].endswith(".gz") else ""
    if seed is None:
        return tf.data.TFRecordDataset(files, compression_type=compression)
    order = np.random.default_rng(seed).permutation(len(files))
    return tf.data.Dataset.from_tensor_slices([files[index] for index in order]).interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type=compression),
        cycle_length=min(len(files), INTERLEAVED_SHARDS),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,  # the same seed gives the same order
    )


def dataset_from_spec(
    spec: DataSpec, files: list[str], batch_size: int, *, seed: int | None = None
) -> "tf.data.Dataset":
    """One epoch of batched (features, label) from tf.Example files, parsed as the spec says (shards interleaved
    in a seeded order when `seed` is given: see `record_dataset`)."""
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

    return record_dataset(files, seed=seed).batch(batch_size).map(to_pair, num_parallel_calls=tf.data.AUTOTUNE)

"""Small real datasets and models of the kinds users bring: named inputs, binary, regression, several outputs.

Each dataset is written as gzipped tf.Example records in the TFX Examples layout (Split-train/, Split-eval/);
each model is a few hundred parameters, trained for a few seconds and saved as a tf-keras SavedModel folder.
"""

from pathlib import Path

import numpy as np

from edgeopt.components._shared.keras_bootstrap import keras, tf
from edgeopt.components._shared.training import set_seeds

RECORDS = "data.tfrecord.gz"


def _feature(values: np.ndarray) -> "tf.train.Feature":
    values = np.asarray(values).reshape(-1)
    if np.issubdtype(values.dtype, np.integer):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values.tolist()))
    return tf.train.Feature(float_list=tf.train.FloatList(value=values.astype(np.float32).tolist()))


def write_examples(folder, features: dict[str, np.ndarray], labels: np.ndarray, *, label_key: str = "label",
                   eval_fraction: float = 0.25, seed: int = 0) -> Path:  # fmt: skip
    """Writes `features` (name -> [n, ...] array) and `labels` as Split-train/ and Split-eval/ tf.Example files."""
    folder = Path(folder)
    order = np.random.default_rng(seed).permutation(len(labels))
    eval_count = int(round(len(order) * eval_fraction))
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    for split, indices in {"eval": order[:eval_count], "train": order[eval_count:]}.items():
        (folder / f"Split-{split}").mkdir(parents=True)
        with tf.io.TFRecordWriter(str(folder / f"Split-{split}" / RECORDS), options) as writer:
            for index in indices:
                values = {name: _feature(array[index]) for name, array in features.items()}
                values[label_key] = _feature(labels[index])
                writer.write(tf.train.Example(features=tf.train.Features(feature=values)).SerializeToString())
    return folder


def _standardized(x: np.ndarray) -> np.ndarray:
    return ((x - x.mean(0)) / x.std(0)).astype(np.float32)


def wine_named() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """178 wines, 3 cultivars; 13 measurements split into two named features of 8 and 5 values."""
    from sklearn.datasets import load_wine

    wine = load_wine()
    x = _standardized(wine.data)
    return {"chemistry": x[:, :8], "appearance": x[:, 8:]}, wine.target.astype(np.int64)


def diabetes() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """442 patients, 10 standardized features, disease progression (float, 25..346) scaled by 1/100."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    return {"clinical": _standardized(data.data)}, (data.target / 100.0).astype(np.float32)


def diabetes_spec():
    """The data spec of `diabetes()` written by `write_examples`: one 10-value input, a float label, regression."""
    from edgeopt.components._shared.data_spec import DataSpec

    return DataSpec(
        features=[{"key": "clinical", "shape": [10]}], label_key="label", label_dtype="float32", task="regression"
    )


def regression_task(folder) -> tuple[Path, "object"]:
    """The diabetes regressor and its data (TrainingData) under `folder`: examples/ and model/."""
    from edgeopt.components._shared.data import load_training_data

    features, targets = diabetes()
    examples = write_examples(Path(folder) / "examples", features, targets)
    model = regressor(Path(folder) / "model", features, targets)
    return model, load_training_data(examples, data_spec=diabetes_spec())


def named_input_task(folder) -> tuple[Path, "object"]:
    """The two-input (chemistry, appearance) wine classifier and its data (TrainingData) under `folder`."""
    from edgeopt.components._shared.data import load_training_data
    from edgeopt.components._shared.data_spec import DataSpec

    features, labels = wine_named()
    examples = write_examples(Path(folder) / "examples", features, labels)
    model = dict_input_classifier(Path(folder) / "model", features, labels)
    named = [{"key": "chemistry", "shape": [8], "input": "chemistry"},
             {"key": "appearance", "shape": [5], "input": "appearance"}]  # fmt: skip
    return model, load_training_data(examples, data_spec=DataSpec(features=named, label_key="label"))


def breast_cancer() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """569 tumours, 30 standardized features, 0/1 label."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return {"measurements": _standardized(data.data)}, data.target.astype(np.int64)


def fit_and_save(model, inputs, targets, loss, path, *, epochs: int, learning_rate: float = 0.02) -> Path:
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    model.fit(inputs, targets, epochs=epochs, batch_size=32, verbose=0)
    model.save(str(path), include_optimizer=False)
    return Path(path)


def dict_input_classifier(path, features: dict[str, np.ndarray], labels: np.ndarray) -> Path:
    """Two named Inputs (declared in the opposite order of their names) -> Dense 16 -> 3 logits."""
    set_seeds(0)
    chemistry = keras.Input((8,), name="chemistry")
    appearance = keras.Input((5,), name="appearance")
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(
        keras.layers.Concatenate(name="joined")([chemistry, appearance])
    )
    logits = keras.layers.Dense(3, name="logits")(hidden)
    model = keras.Model({"chemistry": chemistry, "appearance": appearance}, logits)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return fit_and_save(model, features, labels, loss, path, epochs=40)


def two_output_classifier(path, features: dict[str, np.ndarray], labels: np.ndarray) -> Path:
    """Named inputs -> shared Dense -> `species` (3-way softmax) and `alcohol` (the first chemistry value). The
    metric's output is not the first in name order, so reading the wrong one would show."""
    set_seeds(0)
    chemistry = keras.Input((8,), name="chemistry")
    appearance = keras.Input((5,), name="appearance")
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(
        keras.layers.Concatenate(name="joined")([chemistry, appearance])
    )
    species = keras.layers.Dense(3, activation="softmax", name="species")(hidden)
    alcohol = keras.layers.Dense(1, name="alcohol")(hidden)
    model = keras.Model({"chemistry": chemistry, "appearance": appearance}, [species, alcohol])
    targets = [labels, features["chemistry"][:, :1]]
    return fit_and_save(model, features, targets, ["sparse_categorical_crossentropy", "mse"], path, epochs=40)


def regressor(path, features: dict[str, np.ndarray], targets: np.ndarray) -> Path:
    """10 features -> Dense 16 -> 1 value."""
    set_seeds(0)
    inputs = keras.Input((10,), name="clinical")
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="progression")(hidden))
    return fit_and_save(model, features["clinical"], targets, "mse", path, epochs=60)


def binary_classifier(path, features: dict[str, np.ndarray], labels: np.ndarray) -> Path:
    """30 features -> Dense 8 -> 1 sigmoid probability."""
    set_seeds(0)
    inputs = keras.Input((30,), name="measurements")
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="malignant")(hidden))
    return fit_and_save(model, features["measurements"], labels, "binary_crossentropy", path, epochs=20)

"""Model kinds beyond the digits CNN: a Dense->BatchNorm MLP through every QAT recipe, support checks before work."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from edgeopt.components._shared.data import DataSpec, FeatureSpec, load_training_data
from edgeopt.components._shared.keras_bootstrap import keras, tf
from edgeopt.components._shared.model_format import inspect_model
from edgeopt.components._shared.support import check_recipe
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.recipes.core import run_recipe

NUM_FEATURES = 30


def _write_split(folder, inputs, labels):
    folder.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(folder / "data.tfrecord")) as writer:
        for row, label in zip(inputs, labels, strict=True):
            features = {
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=row.tolist())),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())


@pytest.fixture(scope="module")
def cancer_data(tmp_path_factory):
    """sklearn's breast_cancer (569 x 30 floats, binary) standardized, as tf.Examples with a 2-class int label."""
    inputs, labels = load_breast_cancer(return_X_y=True)
    inputs = ((inputs - inputs.mean(0)) / inputs.std(0)).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(inputs))
    examples = tmp_path_factory.mktemp("cancer") / "examples"
    _write_split(examples / "Split-train", inputs[order[:450]], labels[order[:450]])
    _write_split(examples / "Split-eval", inputs[order[450:]], labels[order[450:]])
    spec = DataSpec(features=[FeatureSpec(key="x", shape=[NUM_FEATURES])], label_key="label")
    return load_training_data(examples, data_spec=spec)


@pytest.fixture(scope="module")
def dense_bn_mlp(tmp_path_factory, cancer_data):
    """Dense(16) -> BatchNormalization -> ReLU -> Dense(2): the layer order tfmot's QAT refuses (~600 parameters)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.layers.Input(shape=(NUM_FEATURES,)),
            keras.layers.Dense(16, name="dense"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(name="relu"),
            keras.layers.Dense(2, activation="softmax", name="head"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(*cancer_data.arrays("train"), epochs=5, verbose=0)
    path = tmp_path_factory.mktemp("mlp") / "dense_bn_mlp"
    model.save(path)
    return path


def _one_epoch(name: str) -> RecipeConfig:
    recipe = RecipeConfig.builtin(name).to_dict()
    for step in recipe["steps"]:
        if "epochs" in step["config"]:
            step["config"]["epochs"] = 1
    return RecipeConfig.model_validate(recipe)


@pytest.mark.parametrize("name", ["qat", "cqat", "pqat", "pcqat"])
def test_dense_batchnorm_mlp_runs_every_qat_recipe(tmp_path, cancer_data, dense_bn_mlp, unchanged, name):
    recipe = _one_epoch(name)
    check_recipe(inspect_model(dense_bn_mlp), recipe)  # supported: nothing raised
    tflite_path, steps = run_recipe(unchanged(dense_bn_mlp), recipe, tmp_path / name, data=cancer_data, verbose=0)

    from edgeopt.components._shared.tflite_runtime import TfliteRunner

    inputs, labels = cancer_data.arrays("eval")
    runner = TfliteRunner(tflite_path)
    assert runner.input_dtype == np.float32  # full_integer keeps float I/O around int8 ops
    accuracy = float(np.mean(runner.predict(inputs).argmax(-1) == labels))
    assert accuracy > 0.8, f"{name}: int8 accuracy {accuracy:.3f} (the majority class alone gives 0.63)"
    assert steps[-1]["technique"] == "quantize" and steps[-1]["result"]["top1_agreement"] >= 0.9
    if name == "pcqat":
        cluster = next(step for step in steps if step["technique"] == "cluster")["result"]
        # the 32-weight head keeps ~6 nonzero weights after 80 % pruning: fewer than 16 clusters, so it is skipped
        assert "head" in cluster["skipped_layers"] and "< 16 clusters" in cluster["skipped_layers"]["head"]

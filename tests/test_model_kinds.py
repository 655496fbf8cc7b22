"""Model kinds beyond the digits CNN: a Dense->BatchNorm MLP through every QAT recipe, support checks before work."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from edgeopt.components._shared.data import load_training_data
from edgeopt.components._shared.data_spec import DataSpec, FeatureSpec
from edgeopt.components._shared.errors import UnsupportedModelError
from edgeopt.components._shared.keras_bootstrap import keras, tf
from edgeopt.components._shared.model_format import inspect_model
from edgeopt.components._shared.support import check_recipe
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.recipes.core import run_recipe
from tests.helpers import whole_split

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
    model.fit(*whole_split(cancer_data, "train"), epochs=5, verbose=0)
    path = tmp_path_factory.mktemp("mlp") / "dense_bn_mlp"
    model.save(path)
    return path


def _one_epoch(name: str) -> RecipeConfig:
    recipe = RecipeConfig.builtin(name).to_dict()
    for step in recipe["steps"]:
        if "epochs" in step["config"]:
            step["config"]["epochs"] = 1
    return RecipeConfig.model_validate(recipe)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qat", "cqat", "pqat", "pcqat"])
def test_dense_batchnorm_mlp_runs_every_qat_recipe(tmp_path, cancer_data, dense_bn_mlp, unchanged, name):
    recipe = _one_epoch(name)
    check_recipe(inspect_model(dense_bn_mlp), recipe)  # supported: nothing raised
    tflite_path, steps = run_recipe(unchanged(dense_bn_mlp), recipe, tmp_path / name, data=cancer_data)

    from edgeopt.components._shared.tflite_runtime import TfliteRunner

    inputs, labels = whole_split(cancer_data, "eval")
    runner = TfliteRunner(tflite_path)
    assert runner.input_dtype == np.float32  # full_integer keeps float I/O around int8 ops
    accuracy = float(np.mean(runner.predict(inputs).argmax(-1) == labels))
    assert accuracy > 0.8, f"{name}: int8 accuracy {accuracy:.3f} (the majority class alone gives 0.63)"
    assert steps[-1]["technique"] == "quantize" and steps[-1]["result"]["top1_agreement"] >= 0.9
    if name == "pcqat":
        cluster = next(step for step in steps if step["technique"] == "cluster")["result"]
        # the 32-weight head keeps ~6 nonzero weights after 80 % pruning: fewer than 16 clusters, so it is skipped
        assert "head" in cluster["skipped_layers"] and "< 16 clusters" in cluster["skipped_layers"]["head"]


def _refused_before_work(report, output_dir, name, match):
    record = next(candidate for candidate in report["candidates"] if candidate["recipe"] == name)
    assert record["error"].startswith("UnsupportedModelError: ") and match in record["error"], record["error"]
    assert not (output_dir / "candidates" / name).exists(), f"{name} started work before being refused"


def _ran(report, names):
    records = {candidate["recipe"]: candidate for candidate in report["candidates"]}
    for name in names:
        assert records[name].get("error") is None, records[name].get("error")
        assert records[name]["tflite_bytes"] > 0 and records[name]["accuracy"] > 0.85, records[name]


@pytest.fixture(scope="module")
def module_saved_model(tmp_path_factory, cancer_data):
    """A plain tf.Module (logistic regression fit by scikit-learn) with a serving signature: no Keras anywhere."""
    from sklearn.linear_model import LogisticRegression

    inputs, labels = whole_split(cancer_data, "train")
    fitted = LogisticRegression(max_iter=500).fit(inputs, labels)

    class TwoClassLogistic(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.stack([np.zeros(NUM_FEATURES), fitted.coef_[0]], axis=1).astype(np.float32))
            self.b = tf.Variable(np.array([0.0, fitted.intercept_[0]], np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, NUM_FEATURES], tf.float32, name="x")])
        def serve(self, x):
            return {"probabilities": tf.nn.softmax(tf.matmul(x, self.w) + self.b)}

    module = TwoClassLogistic()
    path = tmp_path_factory.mktemp("module") / "saved_model"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


@pytest.mark.slow
def test_plain_saved_model_runs_export_and_ptq_and_refuses_training(
    tmp_path, cancer_data, module_saved_model, unchanged
):
    from edgeopt.components.recipes.core import optimize

    recipes = [RecipeConfig.builtin(name) for name in ("ptq_int8", "ptq_dynamic")] + [_one_epoch("qat")]
    report = optimize(unchanged(module_saved_model), recipes, tmp_path / "out", data=cancer_data)
    assert report["baseline"]["accuracy"] > 0.9 and report["baseline"]["max_abs_diff"] < 1e-5
    _ran(report, ["ptq_int8", "ptq_dynamic"])
    _refused_before_work(report, tmp_path / "out", "qat", "SavedModel without Keras metadata")
    assert "recipes of this job that apply: ['ptq_int8', 'ptq_dynamic']" in report["candidates"][2]["error"]


@pytest.mark.slow
def test_subclassed_model_runs_ptq_and_refuses_training_before_work(tmp_path, cancer_data, unchanged):
    from edgeopt.components.recipes.core import optimize

    class TwoLayerNet(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(8, activation="relu")
            self.head = keras.layers.Dense(2, activation="softmax")

        def call(self, inputs):
            return self.head(self.hidden(inputs))

    keras.utils.set_random_seed(0)
    model = TwoLayerNet()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(*whole_split(cancer_data, "train"), epochs=8, verbose=0)
    model.save(tmp_path / "subclassed")
    assert inspect_model(tmp_path / "subclassed").is_subclassed

    recipes = [RecipeConfig.builtin("ptq_int8"), _one_epoch("prune80_int8"), _one_epoch("qat")]
    report = optimize(unchanged(tmp_path / "subclassed"), recipes, tmp_path / "out", data=cancer_data)
    _ran(report, ["ptq_int8"])
    for name in ("prune80_int8", "qat"):
        _refused_before_work(report, tmp_path / "out", name, "subclassed model (class TwoLayerNet)")
    with pytest.raises(UnsupportedModelError, match="subclassed model"):  # the pipeline faces' entry point too
        run_recipe(tmp_path / "subclassed", _one_epoch("qat"), tmp_path / "direct", data=cancer_data)
    assert not (tmp_path / "direct").exists()


def test_unsupported_layers_are_all_listed_in_one_error(tmp_path):
    model = keras.Sequential(
        [
            keras.layers.Input(shape=(8, 8, 1)),
            keras.layers.Rescaling(1 / 16, name="rescale"),
            keras.layers.Conv2DTranspose(2, 3, name="upsample"),
            keras.layers.LayerNormalization(name="norm"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, name="logits"),
        ]
    )
    model.save(tmp_path / "model")
    with pytest.raises(UnsupportedModelError) as raised:
        check_recipe(inspect_model(tmp_path / "model"), _one_epoch("qat"))
    message = str(raised.value)
    assert "rescale (Rescaling)" in message and "norm (LayerNormalization)" in message
    assert "Conv2DTranspose" not in message  # tfmot's registry quantizes it
    assert "keep them out with layer_types/layer_names" in message and "Nothing was trained" in message
    check_recipe(inspect_model(tmp_path / "model"), _one_epoch("prune80_int8"))  # pruning leaves them alone


def test_nested_model_is_refused_for_training(tmp_path):
    inner = keras.Sequential([keras.layers.Input(shape=(64,)), keras.layers.Dense(16, name="inner_dense")], name="body")
    model = keras.Sequential(
        [keras.layers.Input(shape=(8, 8, 1)), keras.layers.Flatten(), inner, keras.layers.Dense(10)]
    )
    model.save(tmp_path / "model.keras")
    with pytest.raises(UnsupportedModelError, match=r"nested models \['.*/body'\].*build the model flat"):
        check_recipe(inspect_model(tmp_path / "model.keras"), _one_epoch("cluster16_int8"))


_KERAS3_TRAIN_SCRIPT = """
import sys
import numpy as np
import keras
assert keras.__version__.startswith("3."), keras.__version__
folder = sys.argv[1]
inputs, labels = np.load(folder + "/inputs.npy"), np.load(folder + "/labels.npy")
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input(shape=(30,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(2, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(inputs, labels, epochs=8, verbose=0)
model.save(folder + "/model.keras")
model.export(folder + "/exported")
unsafe = keras.Sequential([keras.Input(shape=(30,)), keras.layers.Lambda(lambda x: x * 2.0, name="doubler"),
                           keras.layers.Dense(2)])
unsafe.save(folder + "/lambda.keras")
body = keras.Sequential([keras.Input(shape=(8,)), keras.layers.Dense(2, activation="softmax")], name="body")
nested = keras.Sequential([keras.Input(shape=(30,)), keras.layers.Dense(8, activation="relu"), body])
nested.save(folder + "/nested.keras")
"""


@pytest.fixture(scope="module")
def keras3_model(tmp_path_factory, cancer_data):
    """A Keras 3 MLP trained and saved (.keras and model.export) by a subprocess that imports Keras 3."""
    import os
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("keras3")
    inputs, labels = whole_split(cancer_data, "train")
    np.save(folder / "inputs.npy", inputs)
    np.save(folder / "labels.npy", labels)
    env = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}
    subprocess.run([sys.executable, "-c", _KERAS3_TRAIN_SCRIPT, str(folder)], env=env, check=True, timeout=600)
    return folder


@pytest.mark.slow
def test_keras3_file_runs_every_ptq_recipe_and_qat_through_a_tf_keras_rebuild(tmp_path, cancer_data, keras3_model):
    from edgeopt.components._shared.model_format import ModelFormat
    from edgeopt.components._shared.model_io import load_keras_model, model_digest
    from edgeopt.components._shared.model_source import SavedModelSource
    from edgeopt.components.recipes.core import optimize

    path = keras3_model / "model.keras"
    assert inspect_model(path).format == ModelFormat.KERAS3_FILE
    before = model_digest(path)
    inputs, _ = whole_split(cancer_data, "eval")
    rebuilt = load_keras_model(path)  # tf-keras copy: same outputs as the Keras 3 model's own export
    assert isinstance(rebuilt, keras.Model)
    np.testing.assert_allclose(
        rebuilt(inputs).numpy(), SavedModelSource(keras3_model / "exported").predict(inputs), atol=1e-5
    )
    ptq = ["ptq_dynamic", "ptq_fp16", "ptq_int16x8", "ptq_int8", "ptq_int8_io"]
    recipes = [RecipeConfig.builtin(name) for name in ptq] + [_one_epoch("qat")]
    report = optimize(path, recipes, tmp_path / "out", data=cancer_data)
    assert report["baseline"]["accuracy"] > 0.9 and report["baseline"]["max_abs_diff"] < 1e-5
    _ran(report, [*ptq, "qat"])
    assert model_digest(path) == before


@pytest.mark.slow
def test_keras3_model_that_cannot_be_rebuilt_refuses_training_before_work(tmp_path, cancer_data, keras3_model):
    from edgeopt.components.recipes.core import optimize

    recipes = [RecipeConfig.builtin("ptq_dynamic"), _one_epoch("qat")]
    report = optimize(keras3_model / "nested.keras", recipes, tmp_path / "out", data=cancer_data)
    assert report["candidates"][0].get("error") is None
    _refused_before_work(report, tmp_path / "out", "qat", "saved by Keras 3 and tfmot wraps only tf-keras models")
    assert "nested models" in report["candidates"][1]["error"]
    assert "recipes of this job that apply: ['ptq_dynamic']" in report["candidates"][1]["error"]


@pytest.mark.slow
def test_keras3_export_saved_model_runs_ptq(tmp_path, cancer_data, keras3_model):
    from edgeopt.components._shared.model_format import ModelFormat
    from edgeopt.components.recipes.core import optimize

    assert inspect_model(keras3_model / "exported").format == ModelFormat.PLAIN_SAVED_MODEL
    recipes = [RecipeConfig.builtin("ptq_int8")]
    report = optimize(keras3_model / "exported", recipes, tmp_path / "out", data=cancer_data)
    _ran(report, ["ptq_int8"])


def test_keras3_lambda_is_refused_before_the_export_subprocess(tmp_path, cancer_data, keras3_model, monkeypatch):
    from edgeopt.components._shared import keras3_bridge
    from edgeopt.components._shared.errors import UnsafeModelError
    from edgeopt.components.export.config import ExportConfig
    from edgeopt.components.export.core import export_tflite

    def no_subprocess(*args, **kwargs):
        raise AssertionError("the Keras 3 export subprocess started")

    monkeypatch.setattr(keras3_bridge.subprocess, "run", no_subprocess)
    with pytest.raises(UnsafeModelError, match=r"Lambda layer\(s\) \['doubler'\]"):
        export_tflite(keras3_model / "lambda.keras", ExportConfig(), tmp_path / "out", data=cancer_data)
    assert not (tmp_path / "out").exists()


def test_too_few_weights_counts_nonzero_weights_and_channels():
    from edgeopt.components.clustering.core import too_few_weights

    kernel = np.zeros((3, 3, 2, 4), np.float32)
    kernel[..., :3] = 1.0  # 18 weights in each of channels 0-2, channel 3 all zero
    assert too_few_weights(kernel, 16, per_channel=False, preserve_sparsity=False) is None
    assert too_few_weights(kernel, 16, per_channel=False, preserve_sparsity=True) is None  # 54 nonzero
    assert too_few_weights(kernel, 16, per_channel=True, preserve_sparsity=False) is None  # 18 per channel
    assert too_few_weights(kernel, 16, per_channel=True, preserve_sparsity=True) == (
        "0 nonzero weights in one output channel < 16 clusters; left unclustered"
    )
    assert too_few_weights(np.ones((5, 2)), 16, per_channel=False, preserve_sparsity=False) == (
        "10 weights < 16 clusters; left unclustered"
    )


@pytest.mark.slow
def test_cli_runs_ptq_on_a_plain_saved_model_and_refuses_qat_without_a_traceback(
    tmp_path, cancer_data, module_saved_model
):
    import json
    import subprocess
    from pathlib import Path

    recipes = Path(__file__).resolve().parents[1] / "configs" / "recipes"
    spec = tmp_path / "spec.yaml"
    spec.write_text("features:\n  - {key: x, shape: [30]}\nlabel_key: label\n")
    result = subprocess.run(
        ["edgeopt", "optimize", "--model", str(module_saved_model), "--examples", cancer_data.examples,
         "--data-spec", str(spec), "--recipe", str(recipes / "ptq_int8.yaml"), "--recipe", str(recipes / "qat.yaml"),
         "--out", str(tmp_path / "out"), "--no-tracking"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    # The exit status of a job with a refused recipe is the CLI's rule (issue 11 item 5), not asserted here.
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    records = {candidate["recipe"]: candidate for candidate in report["candidates"]}
    assert records["ptq_int8"].get("error") is None and records["ptq_int8"]["accuracy"] > 0.9
    assert records["qat"]["error"].startswith("UnsupportedModelError: recipe qat cannot run")
    assert "Traceback" not in result.stdout + result.stderr
    assert "recipe qat refused" in result.stdout + result.stderr

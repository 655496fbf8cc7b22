"""Models that are not the digits CNN, end to end: named inputs (CLI with a data spec and with a module file, KFP),
a regressor gated on MAE, a binary sigmoid model scored by AUC, two outputs with the metric reading one by name,
and a TFX-style export whose serving signature parses serialized tf.Example."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from kfp import dsl

from edgeopt.components._shared.data import DataSpec, load_training_data
from edgeopt.components._shared.errors import DataError
from edgeopt.components._shared.keras_bootstrap import keras, tf
from edgeopt.components._shared.tflite_runtime import TfliteRunner
from edgeopt.components.evaluation.config import EvaluationConfig
from edgeopt.components.evaluation.core import evaluate_tflite
from edgeopt.components.evaluation.kfp_component import evaluate_and_gate
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.recipes.core import optimize
from edgeopt.components.recipes.kfp_component import optimize_recipe
from tests import task_models
from tests.helpers import kernels, whole_split

FAST = EvaluationConfig(warmup_runs=2, timed_runs=10)
INT8 = {"name": "int8", "steps": [{"technique": "quantize", "config": {"mode": "full_integer"}}],
        "gate": {"max_accuracy_drop": 5.0}}  # fmt: skip
PRUNE_INT8 = {
    "name": "prune_int8",
    "steps": [
        {"technique": "prune", "config": {"target_sparsity": 0.5, "epochs": 2, "learning_rate": 0.001}},
        {"technique": "quantize", "config": {"mode": "full_integer"}},
    ],
    "gate": {"max_accuracy_drop": 5.0},
}
NAMED_SPEC = {
    "features": [
        {"key": "chemistry", "shape": [8], "input": "chemistry"},
        {"key": "appearance", "shape": [5], "input": "appearance"},
    ],
    "label_key": "label",
}
# A TFX Trainer module built from a feature spec: a dict of named features, the label shaped [batch, 1].
DICT_MODULE = """
import tensorflow as tf

TASK = "classification"
METRIC = "top_k_accuracy"
TOP_K = 2

def input_fn(file_pattern, batch_size):
    spec = {
        "chemistry": tf.io.FixedLenFeature([8], tf.float32),
        "appearance": tf.io.FixedLenFeature([5], tf.float32),
        "label": tf.io.FixedLenFeature([1], tf.int64),
    }
    dataset = tf.data.TFRecordDataset(file_pattern, compression_type="GZIP").batch(batch_size)
    return dataset.map(lambda records: tf.io.parse_example(records, spec)).map(lambda f: (f, f.pop("label")))
"""


@pytest.fixture(scope="module")
def wine(tmp_path_factory):
    features, labels = task_models.wine_named()
    root = tmp_path_factory.mktemp("wine")
    examples = task_models.write_examples(root / "examples", features, labels)
    return examples, task_models.dict_input_classifier(root / "model", features, labels)


def edgeopt(*args):
    return subprocess.run(["edgeopt", *map(str, args)], capture_output=True, text=True, timeout=900)


def _recipes(tmp_path):
    paths = []
    for fields in (INT8, PRUNE_INT8):
        path = tmp_path / f"{fields['name']}.json"
        path.write_text(RecipeConfig(**fields).to_json())
        paths += ["--recipe", path]
    return paths


def _check_named_input_report(out: Path, metric_name: str):
    report = json.loads((out / "report.json").read_text())
    baseline = report["baseline"]
    assert baseline["metric"]["name"] == metric_name and baseline["metric"]["output"] == "logits"
    assert set(TfliteRunner(baseline["tflite_path"]).input_names) == {"chemistry", "appearance"}
    for candidate in report["candidates"]:
        assert candidate.get("error") is None, candidate.get("error")
        metric = candidate["metric"]
        assert metric["name"] == metric_name and metric["higher_is_better"] is True
        assert candidate["metric_delta"] == pytest.approx((baseline["metric"]["value"] - metric["value"]) * 100)
        assert candidate["gate"]["passed"] is (candidate["metric_delta"] <= 5.0 if metric_name == "accuracy" else True)
        # Calibrated with both named inputs: every kernel is int8.
        assert {t.type_name for t in kernels(candidate["tflite_path"])} == {"INT8"}
    return report


@pytest.mark.slow
def test_dict_input_classifier_through_the_cli_with_a_data_spec(wine, tmp_path):
    examples, model = wine
    spec = tmp_path / "spec.json"
    spec.write_text(DataSpec(**NAMED_SPEC).to_json())
    out = tmp_path / "out"
    result = edgeopt("optimize", "--model", model, "--examples", examples, "--data-spec", spec,
                     *_recipes(tmp_path), "--out", out, "--timed-runs", 10)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| accuracy | drop (pt) |" in result.stdout
    report = _check_named_input_report(out, "accuracy")
    assert report["baseline"]["accuracy"] >= 0.9
    prune = report["candidates"][1]
    assert [record["technique"] for record in prune["step_records"]] == ["prune", "quantize"]


@pytest.mark.slow
def test_dict_input_classifier_through_the_cli_with_a_module_file(wine, tmp_path):
    examples, model = wine
    module = tmp_path / "trainer_module.py"
    module.write_text(DICT_MODULE)
    out = tmp_path / "out"
    result = edgeopt("optimize", "--model", model, "--examples", examples, "--module-file", module,
                     *_recipes(tmp_path), "--out", out, "--timed-runs", 10)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = _check_named_input_report(out, "top_k_accuracy")
    assert report["baseline"]["metric"]["value"] >= report["baseline"]["accuracy"]  # top-2 >= top-1
    assert "| top_k_accuracy | drop (pt) |" in result.stdout


def test_named_inputs_through_the_kfp_components(wine, tmp_path):
    examples, model = wine

    def artifact(name, kind=dsl.Model, uri=None):
        return kind(name=name, uri=str(uri or tmp_path / name), metadata={})

    optimized = artifact("optimized")
    optimize_recipe.python_func(
        model=artifact("model", uri=model), examples=artifact("examples", dsl.Dataset, examples),
        optimized_model=optimized, metrics=artifact("metrics", dsl.Metrics),
        report=artifact("report", dsl.Markdown), recipe=RecipeConfig(**INT8).to_json(), data_spec=NAMED_SPEC,
    )  # fmt: skip
    tflite = Path(optimized.path) / "model.tflite"
    assert set(TfliteRunner(tflite).input_names) == {"chemistry", "appearance"}
    baseline = artifact("baseline")
    Path(baseline.path).mkdir()
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.models.load_model(model))
    (Path(baseline.path) / "model.tflite").write_bytes(converter.convert())
    evaluation = artifact("evaluation", dsl.Artifact)
    passed = evaluate_and_gate.python_func(
        candidate=optimized, baseline=baseline, examples=artifact("examples", dsl.Dataset, examples),
        metrics=artifact("m", dsl.Metrics), report=artifact("r", dsl.Markdown), evaluation=evaluation,
        gate={"max_accuracy_drop": 5.0}, data_spec=NAMED_SPEC,
    )  # fmt: skip
    record = json.loads(Path(evaluation.path).read_text())
    assert record["metric"]["name"] == "accuracy" and record["metric"]["output"] == "logits"
    assert passed.passed is (record["metric_delta"] <= 5.0) and passed.accuracy == record["accuracy"]


def test_regressor_is_scored_and_gated_on_mae(tmp_path):
    features, targets = task_models.diabetes()
    examples = task_models.write_examples(tmp_path / "examples", features, targets)
    model = task_models.regressor(tmp_path / "model", features, targets)
    data = load_training_data(examples, data_spec=task_models.diabetes_spec())
    recipes = [
        RecipeConfig(**{**INT8, "gate": {"max_metric_drop": 0.02}}),
        RecipeConfig(name="builtin_gate", steps=INT8["steps"], gate={"max_accuracy_drop": 1.0}),
    ]
    report = optimize(model, recipes, tmp_path / "out", data=data, evaluation=FAST)
    inputs, labels = whole_split(data, "eval")
    keras_mae = float(np.mean(np.abs(keras.models.load_model(model)(inputs).numpy().reshape(-1) - labels)))
    baseline = report["baseline"]
    assert baseline["metric"] == {"name": "mae", "higher_is_better": False, "value": pytest.approx(keras_mae, abs=1e-4),
                                  "output": "progression"}  # fmt: skip
    assert baseline["accuracy"] is None
    absolute, relative = report["candidates"]
    for candidate in (absolute, relative):
        assert candidate["accuracy"] is None and candidate["accuracy_drop"] is None
        # Direction-aware: MAE rising is a positive delta.
        assert candidate["metric_delta"] == pytest.approx(candidate["metric"]["value"] - baseline["metric"]["value"])
    assert absolute["gate"]["passed"] is (absolute["metric_delta"] <= 0.02)
    relative_delta = relative["metric_delta"] / baseline["metric"]["value"] * 100
    assert relative["metric_delta_relative"] == pytest.approx(relative_delta)
    assert relative["gate"]["passed"] is (relative_delta <= 1.0)
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| mae | worse by |" in markdown and "the metric reads output `progression`" in markdown


def test_binary_sigmoid_model_is_scored_by_auc(tmp_path):
    from sklearn.metrics import roc_auc_score

    features, labels = task_models.breast_cancer()
    examples = task_models.write_examples(tmp_path / "examples", features, labels)
    model = task_models.binary_classifier(tmp_path / "model", features, labels)
    spec = DataSpec(features=[{"key": "measurements", "shape": [30]}], label_key="label", task="binary", metric="auc")
    data = load_training_data(examples, data_spec=spec)
    report = optimize(model, [RecipeConfig(**PRUNE_INT8)], tmp_path / "out", data=data, evaluation=FAST)
    inputs, truth = whole_split(data, "eval")
    probabilities = keras.models.load_model(model)(inputs).numpy().reshape(-1)
    baseline, candidate = report["baseline"], report["candidates"][0]
    assert candidate.get("error") is None, candidate.get("error")
    assert baseline["metric"]["name"] == "auc" and baseline["metric"]["higher_is_better"] is True
    assert baseline["metric"]["value"] == pytest.approx(roc_auc_score(truth, probabilities), abs=1e-3)
    assert baseline["accuracy"] == pytest.approx(np.mean((probabilities > 0.5) == truth), abs=0.01)
    assert candidate["metric_delta"] == pytest.approx(
        (baseline["metric"]["value"] - candidate["metric"]["value"]) * 100
    )
    assert candidate["metric"]["value"] > 0.9  # fine-tuned with binary cross-entropy on a sigmoid, not softmax CE


def test_two_outputs_the_metric_reads_the_named_one(wine, tmp_path):
    examples, _ = wine
    features, labels = task_models.wine_named()
    model = task_models.two_output_classifier(tmp_path / "model", features, labels)
    data = load_training_data(examples, data_spec=DataSpec(**NAMED_SPEC, output="species"))
    report = optimize(model, [RecipeConfig(**PRUNE_INT8)], tmp_path / "out", data=data, evaluation=FAST)
    inputs, truth = whole_split(data, "eval")
    species = keras.models.load_model(model)(inputs)[0].numpy()
    assert report["baseline"]["metric"]["output"] == "species"
    assert report["baseline"]["metric"]["value"] == pytest.approx(np.mean(species.argmax(-1) == truth))
    assert report["candidates"][0].get("error") is None, report["candidates"][0].get("error")
    unnamed = load_training_data(examples, data_spec=DataSpec(**NAMED_SPEC))
    with pytest.raises(DataError, match=r"has outputs \['alcohol', 'species'\]; name the one the metric reads"):
        evaluate_tflite(report["baseline"]["tflite_path"], unnamed, FAST)


def test_serving_signature_that_parses_examples_is_converted_from_the_keras_call(wine, tmp_path):
    """A TFX Trainer export: `serving_default` takes serialized tf.Example; the .tflite takes the raw inputs."""
    examples, model_path = wine
    model = keras.models.load_model(model_path)
    spec = {"chemistry": tf.io.FixedLenFeature([8], tf.float32), "appearance": tf.io.FixedLenFeature([5], tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized):
        return {"logits": model(tf.io.parse_example(serialized, spec))}

    export = tmp_path / "trainer" / "Format-Serving"
    model.save(str(export), signatures={"serving_default": serve_examples})
    assert list(tf.saved_model.load(str(export)).signatures["serving_default"].structured_input_signature[1]) == [
        "examples"
    ]
    data = load_training_data(examples, data_spec=DataSpec(**NAMED_SPEC))
    report = optimize(tmp_path / "trainer", [RecipeConfig(**INT8)], tmp_path / "out", data=data, evaluation=FAST)
    runner = TfliteRunner(report["baseline"]["tflite_path"])
    assert set(runner.input_names) == {"chemistry", "appearance"} and runner.input_dtype == np.float32
    inputs, _ = whole_split(data, "eval")
    np.testing.assert_allclose(runner.predict(inputs), model(inputs).numpy(), atol=1e-5)


def test_tfx_executors_with_a_trainer_module_of_named_features_and_a_regressor(wine, tmp_path):
    """The TFX face on the same core: quantize, export and evaluate a dict-input model read through a Trainer
    module, and evaluate a regressor (no accuracy: the artifact's properties carry the metric instead)."""
    from tfx.types import standard_artifacts

    from edgeopt.components._shared import tfx_component as face
    from edgeopt.components.evaluation.tfx_component import CompressionEvaluatorExecutor
    from edgeopt.components.export.tfx_component import TFLiteExporterExecutor
    from edgeopt.components.quantization.tfx_component import QuantizerExecutor

    def artifact(kind, uri):
        instance = kind()
        instance.uri = str(uri)
        Path(uri).mkdir(parents=True, exist_ok=True)
        return instance

    module = tmp_path / "trainer_module.py"
    module.write_text(DICT_MODULE)
    features, targets = task_models.diabetes()
    regression_module = tmp_path / "regression_module.py"
    regression_module.write_text(
        "import tensorflow as tf\nTASK = 'regression'\nMETRIC = 'rmse'\n\n"
        "def input_fn(file_pattern, batch_size):\n"
        "    spec = {'clinical': tf.io.FixedLenFeature([10], tf.float32),\n"
        "            'label': tf.io.FixedLenFeature([], tf.float32)}\n"
        "    records = tf.data.TFRecordDataset(file_pattern, compression_type='GZIP').batch(batch_size)\n"
        "    return records.map(lambda r: tf.io.parse_example(r, spec)).map(lambda f: (f['clinical'], f['label']))\n"
    )  # fmt: skip
    regression_examples = task_models.write_examples(tmp_path / "diabetes", features, targets)
    cases = {
        "wine": (wine[0], wine[1], module),
        "diabetes": (regression_examples, task_models.regressor(tmp_path / "regressor", features, targets),
                     regression_module),
    }  # fmt: skip
    for name, (examples_dir, model_dir, module_file) in cases.items():
        examples = artifact(standard_artifacts.Examples, examples_dir)
        model = artifact(standard_artifacts.Model, model_dir)
        properties = face.data_source_properties(module_file=module_file) | {face.COMPONENT_VERSION_KEY: "test"}
        quantized = artifact(standard_artifacts.Model, tmp_path / name / "quantized")
        QuantizerExecutor().Do(
            {face.MODEL_KEY: [model], face.EXAMPLES_KEY: [examples]},
            {face.OUTPUT_MODEL_KEY: [quantized]},
            {face.CONFIG_KEY: json.dumps({"mode": "full_integer"}), **properties},
        )
        baseline = artifact(standard_artifacts.Model, tmp_path / name / "baseline")
        TFLiteExporterExecutor().Do(
            {face.MODEL_KEY: [model], face.EXAMPLES_KEY: [examples]},
            {face.OUTPUT_MODEL_KEY: [baseline]},
            {face.CONFIG_KEY: "{}", **properties},
        )
        evaluation = artifact(standard_artifacts.ModelEvaluation, tmp_path / name / "evaluation")
        CompressionEvaluatorExecutor().Do(
            {face.MODEL_KEY: [quantized], face.BASELINE_MODEL_KEY: [baseline], face.EXAMPLES_KEY: [examples]},
            {face.BLESSING_KEY: [artifact(standard_artifacts.ModelBlessing, tmp_path / name / "blessing")],
             face.EVALUATION_KEY: [evaluation]},
            {"gate": json.dumps({"max_metric_drop_relative": 5.0}), "evaluation_config": json.dumps({"timed_runs": 5}),
             **properties},
        )  # fmt: skip
        record = json.loads((Path(evaluation.uri) / "metrics.json").read_text())
        expected = "top_k_accuracy" if name == "wine" else "rmse"
        assert evaluation.get_string_custom_property("metric") == record["metric"]["name"] == expected
        assert evaluation.get_float_custom_property("metric_value") == pytest.approx(record["metric"]["value"])
        assert (record["accuracy"] is None) is (name == "diabetes")


def test_scalar_features_reach_inputs_of_shape_one_by_name(tmp_path):
    """TFX feature specs yield scalar features as [batch] or [batch, 1]; both feed a Keras Input of shape (1,)."""
    age, dose = keras.Input((1,), name="age"), keras.Input((1,), name="dose")
    model = keras.Model([age, dose], keras.layers.Dense(2, name="out")(keras.layers.Concatenate()([age, dose])))
    tflite = tmp_path / "model.tflite"
    tflite.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    rng = np.random.default_rng(0)
    columns = {"dose": rng.normal(size=7).astype(np.float32), "age": rng.normal(size=7).astype(np.float32)}
    expected = model([columns["age"][:, None], columns["dose"][:, None]]).numpy()
    runner = TfliteRunner(tflite)
    np.testing.assert_allclose(runner.predict(columns), expected, atol=1e-6)
    np.testing.assert_allclose(runner.predict({k: v[:, None] for k, v in columns.items()}), expected, atol=1e-6)
    with pytest.raises(DataError, match=r"needs inputs \['dose'\]"):
        runner.predict({"age": columns["age"], "weight": columns["dose"]})


@pytest.mark.slow
def test_multilabel_and_one_hot_labels_fine_tune_with_their_task_loss(tmp_path):
    """QAT on a three-tag sigmoid model and on a softmax model with one-hot float labels: sparse cross-entropy
    (the classifier default) would refuse both label shapes, so a measured candidate shows the task's loss ran."""
    features, labels = task_models.wine_named()
    x = np.concatenate([features["chemistry"], features["appearance"]], axis=1)
    cases = {
        "tags": (np.stack([labels == 0, labels == 1, x[:, 0] > 0], 1).astype(np.int64), "sigmoid",
                 {"task": "multilabel"}),
        "one_hot": (np.eye(3, dtype=np.float32)[labels], "softmax", {"label_dtype": "float32", "metric": "auc"}),
    }  # fmt: skip
    steps = [
        {"technique": "qat", "config": {"epochs": 2}},
        {"technique": "quantize", "config": {"mode": "full_integer"}},
    ]
    qat = RecipeConfig(name="qat_int8", steps=steps)
    for name, (targets, activation, declared) in cases.items():
        examples = task_models.write_examples(tmp_path / name, {"x": x}, targets)
        inputs = keras.Input((13,), name="x")
        model = keras.Model(inputs, keras.layers.Dense(3, activation=activation, name="head")(inputs))
        loss = "binary_crossentropy" if activation == "sigmoid" else "categorical_crossentropy"
        saved = task_models.fit_and_save(model, x, targets, loss, tmp_path / f"{name}_model", epochs=20)
        spec = DataSpec(features=[{"key": "x", "shape": [13]}], label_key="label", label_shape=[3], **declared)
        data = load_training_data(examples, data_spec=spec)
        report = optimize(saved, [qat], tmp_path / f"{name}_out", data=data, evaluation=FAST)
        candidate = report["candidates"][0]
        assert candidate.get("error") is None, candidate.get("error")
        assert report["baseline"]["metric"]["name"] == candidate["metric"]["name"] == "auc"
        assert (report["baseline"]["accuracy"] is None) is (name == "tags")
        assert candidate["metric_delta"] < 5.0

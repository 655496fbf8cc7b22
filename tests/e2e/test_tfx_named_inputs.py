"""A model with several named inputs through a real TFX pipeline (LocalDagRunner, MLMD in SQLite): its Trainer-style
module yields a dict of features, and the pushed .tflite takes those features by name, calibrated on both."""

import json

from tfx import v1 as tfx

from edgeopt.components._shared.tflite_runtime import TfliteRunner
from edgeopt.components.evaluation.tfx_component import CompressionEvaluator
from edgeopt.components.export.tfx_component import TFLiteExporter
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.recipes.tfx_component import ModelOptimizer
from tests import task_models
from tests.helpers import kernels
from tests.test_named_inputs import DICT_MODULE


def test_named_features_through_local_dag_runner(tmp_path):
    features, labels = task_models.wine_named()
    examples = task_models.write_examples(tmp_path / "examples", features, labels)
    model = task_models.dict_input_classifier(tmp_path / "model", features, labels)
    module = tmp_path / "wine_trainer_module.py"
    module.write_text(DICT_MODULE)

    import_examples = tfx.dsl.Importer(
        source_uri=str(examples),
        artifact_type=tfx.types.standard_artifacts.Examples,
        properties={"split_names": json.dumps(["eval", "train"])},
    ).with_id("ImportExamples")
    import_model = tfx.dsl.Importer(source_uri=str(model), artifact_type=tfx.types.standard_artifacts.Model).with_id(
        "ImportModel"
    )
    examples_channel, model_channel = import_examples.outputs["result"], import_model.outputs["result"]
    # ptq_int8's steps; its size gate (2.5x) does not fit a 2 KB model, whose file is mostly fixed overhead.
    recipe = RecipeConfig(name="int8", steps=RecipeConfig.builtin("ptq_int8").to_dict()["steps"])
    baseline = TFLiteExporter(model=model_channel, examples=examples_channel, module_file=str(module)).with_id(
        "BaselineExporter"
    )
    optimizer = ModelOptimizer(model=model_channel, examples=examples_channel, config=recipe, module_file=str(module))
    evaluator = CompressionEvaluator(
        model=optimizer.outputs["output_model"],
        baseline_model=baseline.outputs["output_model"],
        examples=examples_channel,
        gate={"max_accuracy_drop": 5.0},
        module_file=str(module),
    )
    pusher = tfx.components.Pusher(
        model=optimizer.outputs["output_model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=str(tmp_path / "serving"))
        ),
    )
    tfx.orchestration.LocalDagRunner().run(
        tfx.dsl.Pipeline(
            pipeline_name="named-inputs",
            pipeline_root=str(tmp_path / "root"),
            components=[import_examples, import_model, baseline, optimizer, evaluator, pusher],
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
                str(tmp_path / "metadata.sqlite")
            ),
        )
    )
    (pushed,) = (tmp_path / "serving").glob("*/model.tflite")  # blessed: the gate passed
    assert set(TfliteRunner(pushed).input_names) == {"chemistry", "appearance"}
    assert {tensor.type_name for tensor in kernels(pushed)} == {"INT8"}

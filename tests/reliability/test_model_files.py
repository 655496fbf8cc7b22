"""Bad model files fail with a typed error naming the fix, before anything is deserialized or written."""

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgeopt.components._shared.errors import ModelLoadError, UnsafeModelError
from edgeopt.components._shared.keras_bootstrap import keras
from edgeopt.components._shared.model_format import ModelFormat, check_tflite_file, inspect_model
from edgeopt.components._shared.model_io import load_keras_model, model_digest
from edgeopt.components.export.config import ExportConfig
from edgeopt.components.export.core import export_tflite


def _digits_mlp(*layers):
    """A ~650-parameter model on the digits input (8x8x1): enough to export, small enough to build in a blink."""
    return keras.Sequential(
        [keras.layers.Input(shape=(8, 8, 1)), keras.layers.Flatten(), *layers, keras.layers.Dense(10, name="logits")]
    )


def _assert_refused_before_output(path, out, error, match, data):
    """Runs export on `path`: the typed error names the fix, `out` never appears, the input is unchanged."""
    before = model_digest(path) if os.path.exists(path) else None
    with pytest.raises(error, match=match):
        export_tflite(path, ExportConfig(), out, data=data)
    assert not out.exists(), f"{out} was created"
    assert list(out.parent.glob(f".{out.name}*")) == [], "a partial output was left behind"
    if before is not None:
        assert model_digest(path) == before, f"{path} was modified"


def _rewrite_metadata_without_spaces(saved_model):
    """Re-serializes every node's JSON in keras_metadata.pb with no spaces, as the issue's attacker did."""
    from tf_keras.protobuf import saved_metadata_pb2

    metadata_path = saved_model / "keras_metadata.pb"
    proto = saved_metadata_pb2.SavedMetadata()
    proto.ParseFromString(metadata_path.read_bytes())
    for node in proto.nodes:
        node.metadata = json.dumps(json.loads(node.metadata), separators=(",", ":"))
    metadata_path.write_bytes(proto.SerializeToString())
    assert b'"class_name": "Lambda"' not in metadata_path.read_bytes()
    assert b'"class_name":"Lambda"' in metadata_path.read_bytes()


def test_spaceless_lambda_in_saved_model_is_refused_before_its_code_runs(tmp_path, digits_data):
    marker = tmp_path / "lambda_ran.txt"

    def touch_and_pass(x, marker_path=str(marker)):
        open(marker_path, "w").write("stored code ran")  # noqa: SIM115 (the payload of the attack)
        return x

    model = _digits_mlp(keras.layers.Lambda(touch_and_pass, name="payload"))
    model.save(tmp_path / "model")
    marker.unlink()  # saving traced the function once
    _rewrite_metadata_without_spaces(tmp_path / "model")

    _assert_refused_before_output(
        tmp_path / "model", tmp_path / "out", UnsafeModelError, "replace them with", digits_data
    )
    with pytest.raises(UnsafeModelError, match=r"Lambda layer\(s\) \['payload'\]"):
        load_keras_model(tmp_path / "model")
    assert not marker.exists(), "the Lambda's stored code ran"
    load_keras_model(tmp_path / "model", allow_unsafe=True)  # the payload is real: with the opt-in it runs
    assert marker.read_text() == "stored code ran"


@pytest.mark.parametrize("wrapper", ["nested_model", "time_distributed"])
def test_lambda_nested_in_a_model_or_wrapper_is_found(tmp_path, digits_data, wrapper):
    inner = keras.layers.Lambda(lambda x: x * 2.0, name="hidden_lambda")
    if wrapper == "nested_model":
        inner = keras.Sequential([keras.layers.Input(shape=(64,)), inner], name="inner_model")
        model = keras.Sequential([keras.layers.Input(shape=(8, 8, 1)), keras.layers.Flatten(), inner])
    else:
        model = keras.Sequential([keras.layers.Input(shape=(4, 3)), keras.layers.TimeDistributed(inner)])
    model.save(tmp_path / "model.keras")
    inspection = inspect_model(tmp_path / "model.keras")
    assert inspection.lambda_layers == ("hidden_lambda",)
    _assert_refused_before_output(
        tmp_path / "model.keras", tmp_path / "out", UnsafeModelError, "hidden_lambda.*replace them", digits_data
    )


def test_unknown_class_in_keras_file_is_refused_before_keras_imports_its_module(tmp_path, digits_data):
    _digits_mlp().save(tmp_path / "model.keras")
    forged = tmp_path / "forged.keras"
    with zipfile.ZipFile(tmp_path / "model.keras") as source, zipfile.ZipFile(forged, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(content)
                config["config"]["layers"][1].update(module="antigravity", class_name="Fly")
                content = json.dumps(config).encode()
            target.writestr(item, content)
    _assert_refused_before_output(
        forged, tmp_path / "out", UnsafeModelError, "register_keras_serializable", digits_data
    )
    assert "antigravity" not in __import__("sys").modules


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"", "is empty .* fetch the model file again"), (b"<!DOCTYPE html><html>404</html>", "HTML .* fetch the model"),
     (b"\x00\x01garbage bytes", "not a model file .* pass a SavedModel folder or a .keras file")],
    ids=["empty", "html", "garbage"],
)  # fmt: skip
def test_broken_keras_files_say_what_to_do(tmp_path, digits_data, content, match):
    path = tmp_path / "model.keras"
    path.write_bytes(content)
    _assert_refused_before_output(path, tmp_path / "out", ModelLoadError, match, digits_data)


def test_h5_renamed_keras_is_read_as_hdf5_and_needs_the_opt_in(tmp_path, digits_data):
    _digits_mlp().save(tmp_path / "model.h5")
    (tmp_path / "model.h5").rename(tmp_path / "model.keras")
    assert inspect_model(tmp_path / "model.keras").format == ModelFormat.HDF5
    _assert_refused_before_output(
        tmp_path / "model.keras", tmp_path / "out", UnsafeModelError, "re-save it", digits_data
    )
    assert load_keras_model(tmp_path / "model.keras", allow_unsafe=True).count_params() == 650


def test_keras_renamed_h5_is_read_as_keras_without_opt_in(tmp_path, digits_data):
    model = _digits_mlp()
    model.save(tmp_path / "model.keras")
    (tmp_path / "model.keras").rename(tmp_path / "model.h5")
    before = model_digest(tmp_path / "model.h5")
    assert inspect_model(tmp_path / "model.h5").format == ModelFormat.TF_KERAS_FILE
    result = export_tflite(tmp_path / "model.h5", ExportConfig(), tmp_path / "out", data=digits_data)
    assert check_tflite_file(result.tflite_path) and result.max_abs_diff < 1e-4
    assert model_digest(tmp_path / "model.h5") == before


def test_saved_model_without_variables_names_the_missing_folder(tmp_path, digits_data):
    _digits_mlp().save(tmp_path / "model")
    shutil.rmtree(tmp_path / "model" / "variables")
    _assert_refused_before_output(
        tmp_path / "model", tmp_path / "out", ModelLoadError, "copy the whole SavedModel", digits_data
    )


def test_model_over_the_flatbuffer_limit_fails_from_file_sizes(tmp_path, digits_data):
    _digits_mlp().save(tmp_path / "model")
    (shard,) = (tmp_path / "model" / "variables").glob("variables.data-*")
    os.truncate(shard, int(2.2 * 2**30))  # sparse: no disk used, but stat() says 2.2 GiB
    with pytest.raises(ModelLoadError, match=r"2\.20 GiB of weights, over the 2 GiB limit .* split the model"):
        export_tflite(tmp_path / "model", ExportConfig(), tmp_path / "out", data=digits_data)
    assert not (tmp_path / "out").exists()
    assert shard.stat().st_size == int(2.2 * 2**30)


@pytest.mark.parametrize("damage", ["truncated_header", "not_a_flatbuffer", "empty"])
def test_corrupt_tflite_is_refused_by_check_tflite_file(tmp_path, damage):
    path = tmp_path / "champion.tflite"
    path.write_bytes(
        {"truncated_header": b"\x1c\x00\x00", "not_a_flatbuffer": b"<html>not found</html>", "empty": b""}[damage]
    )
    with pytest.raises(ModelLoadError, match="export it again, or register a valid model"):
        check_tflite_file(path)


def test_corrupt_champion_fails_optimize_before_the_baseline_export(tmp_path, tiny_model, digits_data, unchanged):
    from edgeopt.components.recipes.core import optimize

    champion = tmp_path / "champion.tflite"
    champion.write_bytes(b"\x00" * 4 + b"XXXX" + b"\x00" * 100)
    with pytest.raises(ModelLoadError, match=r"champion.tflite is not a TFLite flatbuffer .* export it again"):
        optimize(unchanged(tiny_model), [], tmp_path / "out", data=digits_data, champion_tflite=champion)
    assert not (tmp_path / "out").exists()


def test_valid_tflite_passes_the_check(tmp_path, digits_data):
    _digits_mlp().save(tmp_path / "model")
    result = export_tflite(tmp_path / "model", ExportConfig(), tmp_path / "out", data=digits_data)
    assert check_tflite_file(result.tflite_path).stat().st_size == result.tflite_bytes
    assert np.isfinite(result.max_abs_diff)


def test_registered_custom_layer_loads_and_an_unregistered_one_needs_the_opt_in(tmp_path, digits_data):
    class Doubler(keras.layers.Layer):
        def call(self, inputs):
            return inputs * 2.0

    registered = keras.saving.register_keras_serializable(package="edgeopt_test")(
        type("RegisteredDoubler", (Doubler,), {})
    )
    _digits_mlp(registered(name="doubler")).save(tmp_path / "registered.keras")
    assert load_keras_model(tmp_path / "registered.keras").get_layer("doubler").__class__ is registered

    _digits_mlp(Doubler(name="doubler")).save(tmp_path / "unregistered.keras")
    _assert_refused_before_output(
        tmp_path / "unregistered.keras",
        tmp_path / "out",
        UnsafeModelError,
        r"not built-in Keras or tfmot: \['Doubler', 'module .*'\]; register them",
        digits_data,
    )


def test_function_from_a_non_keras_module_is_refused(tmp_path, digits_data):
    _digits_mlp(keras.layers.Dense(4, activation="relu", name="hidden")).save(tmp_path / "model.keras")
    forged = tmp_path / "forged.keras"
    with zipfile.ZipFile(tmp_path / "model.keras") as source, zipfile.ZipFile(forged, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(content)
                hidden = next(layer for layer in config["config"]["layers"] if layer["config"]["name"] == "hidden")
                hidden["config"]["activation"] = {"module": "shutil", "class_name": "function", "config": "rmtree"}
                content = json.dumps(config).encode()
            target.writestr(item, content)
    _assert_refused_before_output(
        forged, tmp_path / "out", UnsafeModelError, "function rmtree of module shutil", digits_data
    )


def test_keras_file_with_a_truncated_member_is_a_typed_error(tmp_path, digits_data):
    _digits_mlp().save(tmp_path / "model.keras")
    data = bytearray((tmp_path / "model.keras").read_bytes())
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        config = archive.getinfo("config.json")
    # flip bytes inside config.json's stored data: the central directory still lists it, its CRC fails on read
    start = config.header_offset + 30 + len(config.filename) + len(config.extra) + 5
    data[start : start + 8] = b"\xff" * 8
    (tmp_path / "damaged.keras").write_bytes(bytes(data))
    _assert_refused_before_output(
        tmp_path / "damaged.keras", tmp_path / "out", ModelLoadError, "save or download the model again", digits_data
    )


def test_truncated_tflite_fails_as_a_typed_error_when_read(tmp_path, digits_data):
    from edgeopt.components._shared.tflite_runtime import TfliteRunner

    result = export_tflite(_save(tmp_path), ExportConfig(), tmp_path / "out", data=digits_data)
    whole = Path(result.tflite_path).read_bytes()
    (tmp_path / "half.tflite").write_bytes(whole[: len(whole) // 2])  # identifier intact, body cut
    check_tflite_file(tmp_path / "half.tflite")  # the header check alone cannot see it
    with pytest.raises(ModelLoadError, match=r"half.tflite is not a valid .tflite .* export it again"):
        TfliteRunner(tmp_path / "half.tflite")


def _save(tmp_path):
    _digits_mlp().save(tmp_path / "model")
    return tmp_path / "model"

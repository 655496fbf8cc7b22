"""Model loading refuses code-carrying formats by default; outputs are published atomically."""

import pytest

from edgeopt.components._shared.atomic import atomic_output_dir
from edgeopt.components._shared.errors import ModelLoadError, UnsafeModelError
from edgeopt.components._shared.keras_bootstrap import keras
from edgeopt.components._shared.model_io import load_keras_model, model_digest, resolve_model_path


def _small_model(with_lambda=False):
    layers = [keras.layers.Input(shape=(4,)), keras.layers.Dense(3, name="dense")]
    if with_lambda:
        layers.insert(1, keras.layers.Lambda(lambda x: x * 2.0, name="double"))
    return keras.Sequential(layers)


def test_h5_is_refused_by_default_and_loads_with_opt_in(tmp_path):
    path = tmp_path / "model.h5"
    _small_model().save(path)
    with pytest.raises(UnsafeModelError, match=r"HDF5 .* re-save it as a \.keras file or SavedModel"):
        load_keras_model(path)
    assert load_keras_model(path, allow_unsafe=True).count_params() == 15


@pytest.mark.parametrize("file_name", ["model.keras", "saved_model_dir"])
def test_lambda_layers_are_refused_by_default(tmp_path, file_name):
    path = tmp_path / file_name
    _small_model(with_lambda=True).save(path)
    with pytest.raises(UnsafeModelError, match="Lambda layer"):
        load_keras_model(path)
    model = load_keras_model(path, allow_unsafe=True)
    assert [layer.name for layer in model.layers] == ["double", "dense"]


def test_keras_file_and_saved_model_load(tmp_path):
    _small_model().save(tmp_path / "a.keras")
    _small_model().save(tmp_path / "b")
    assert load_keras_model(tmp_path / "a.keras").count_params() == 15
    assert load_keras_model(tmp_path / "b").count_params() == 15


def test_tfx_trainer_layout_is_found(tmp_path):
    _small_model().save(tmp_path / "trainer_output" / "Format-Serving")
    assert resolve_model_path(tmp_path / "trainer_output") == tmp_path / "trainer_output" / "Format-Serving"


def test_missing_and_ambiguous_paths_say_what_to_pass(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_keras_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="holds no single Keras model"):
        load_keras_model(tmp_path / "empty")


def test_atomic_output_dir_leaves_nothing_when_the_block_fails(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_output_dir(target) as staging:
            (staging / "half-written").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_model_digest_sees_a_change(tmp_path):
    path = tmp_path / "m"
    _small_model().save(path)
    before = model_digest(path)
    (path / "extra.txt").write_text("x")
    assert model_digest(path) != before


class _ScaleByTwo(keras.layers.Layer):
    """A custom layer Keras cannot rebuild from config in a process that never imported this module."""

    def call(self, inputs):
        return inputs * 2.0


@pytest.mark.parametrize("custom", [False, True])
def test_step_models_keep_traces_only_when_a_layer_needs_them(tmp_path, custom):
    import numpy as np

    from edgeopt.components._shared.keras_bootstrap import tfmot
    from edgeopt.components._shared.model_io import save_step_model
    from edgeopt.components.pruning.config import PruningConfig

    inner = [keras.layers.Dense(3, name="dense")] + ([_ScaleByTwo(name="scale")] if custom else [])
    model = keras.Sequential([keras.layers.Input(shape=(4,)), *inner])
    if not custom:
        model = tfmot.quantization.keras.quantize_model(model)
    save_step_model(model, tmp_path / "step", technique="prune", config=PruningConfig(), result={})

    # Per-layer traces live in the SavedModel's object graph as functions named after the layer's call.
    saved = (tmp_path / "step" / "saved_model.pb").read_bytes()
    assert (b"layer_call_and_return_conditional_losses" in saved) == custom
    inputs = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    loaded = load_keras_model(tmp_path / "step")
    np.testing.assert_allclose(loaded(inputs), model(inputs), rtol=1e-6)

"""Fine-tuning falls back to the loss a model was saved compiled with when the data declares no task."""

import numpy as np

from edgeopt.components._shared.keras_bootstrap import keras
from edgeopt.components._shared.tasks import Task, TaskSpec
from edgeopt.components._shared.training import saved_loss, task_loss


def _mlp():
    inputs = keras.Input((4,), name="x")
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(8, activation="relu")(inputs)))


def test_the_saved_loss_is_read_from_the_saved_training_config(tmp_path):
    compiled = _mlp()
    compiled.compile("adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=2))
    compiled.fit(np.zeros((4, 4), np.float32), np.zeros(4, np.int64), epochs=1, verbose=0)
    compiled.save(tmp_path / "compiled")
    _mlp().save(tmp_path / "uncompiled")
    compiled.save(tmp_path / "compiled.keras")

    loss = saved_loss(tmp_path / "compiled")
    assert isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
    assert loss.get_config()["ignore_class"] == 2 and loss.get_config()["from_logits"] is True
    assert isinstance(saved_loss(tmp_path / "compiled.keras"), keras.losses.SparseCategoricalCrossentropy)
    assert saved_loss(tmp_path / "uncompiled") is None


def test_a_declared_task_or_a_module_loss_wins_over_the_saved_one():
    saved = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=2)
    undeclared = TaskSpec(Task.CLASSIFICATION, "accuracy", True, None, 5, False, None, None)
    assert task_loss(undeclared, False, from_logits=True, compiled=saved) is saved
    declared = TaskSpec(Task.CLASSIFICATION, "accuracy", True, None, 5, True, None, None)
    chosen = task_loss(declared, False, from_logits=True, compiled=saved)
    assert chosen is not saved and isinstance(chosen, keras.losses.SparseCategoricalCrossentropy)
    module_loss = keras.losses.Huber()
    with_module_loss = TaskSpec(Task.CLASSIFICATION, "accuracy", True, None, 5, False, None, module_loss)
    assert task_loss(with_module_loss, False, from_logits=True, compiled=saved) is module_loss

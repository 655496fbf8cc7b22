"""Shared fixtures: real digits Examples and a tiny real CNN trained on them, once per session."""

import pytest

import edgeopt.components._shared.keras_bootstrap  # noqa: F401  (Keras 2 before anything imports TensorFlow)
from edgeopt.components._shared.data import load_training_data
from edgeopt.components._shared.model_io import model_digest
from edgeopt.components.demo.digits import digits_data_spec, train_digits_baseline, write_digits_examples

TINY_FILTERS = 8
TINY_DENSE_UNITS = 32


def pytest_collection_modifyitems(items):
    """Every test under tests/e2e/ runs a whole pipeline: mark it, so `make test-fast` can leave it out."""
    for item in items:
        if "/tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def digits_examples(tmp_path_factory):
    return write_digits_examples(tmp_path_factory.mktemp("digits") / "examples")


@pytest.fixture(scope="session")
def digits_data(digits_examples):
    return load_training_data(digits_examples, data_spec=digits_data_spec())


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, digits_examples):
    """A ~10 k-parameter CNN (conv 8 -> conv 16 -> dense 32 -> 10 logits) at about 95 % eval accuracy."""
    return train_digits_baseline(
        digits_examples,
        tmp_path_factory.mktemp("model") / "tiny_cnn",
        epochs=12,
        filters=TINY_FILTERS,
        dense_units=TINY_DENSE_UNITS,
    )


@pytest.fixture
def unchanged(request):
    """Asserts at teardown that the given model folder was not modified by the test."""
    watched = []

    def watch(path):
        watched.append((path, model_digest(path)))
        return path

    yield watch
    for path, digest in watched:
        assert model_digest(path) == digest, f"{path} was modified"

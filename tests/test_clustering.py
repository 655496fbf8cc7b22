"""Clustering: every clustered kernel in the .tflite holds at most k distinct values."""

import numpy as np
import pytest

from edgeopt.components._shared.model_io import load_keras_model
from edgeopt.components.clustering.config import ClusteringConfig
from edgeopt.components.clustering.core import cluster_weights
from edgeopt.components.export.config import ExportConfig
from edgeopt.components.export.core import export_tflite
from tests.helpers import keras_accuracy, kernels


@pytest.mark.parametrize("centroid_init", ["kmeans_plus_plus", "linear"])
def test_clustered_tflite_kernels_hold_at_most_k_values(centroid_init, tiny_model, digits_data, tmp_path, unchanged):
    unchanged(tiny_model)
    config = ClusteringConfig(number_of_clusters=8, centroid_init=centroid_init, epochs=1, learning_rate=1e-4)
    result = cluster_weights(tiny_model, config, tmp_path / "clustered", data=digits_data)
    assert result.max_unique_values <= 8
    exported = export_tflite(tmp_path / "clustered", ExportConfig(), tmp_path / "tflite", data=digits_data)
    for tensor in kernels(exported.tflite_path, "FLOAT32"):
        assert len(np.unique(tensor.values)) <= 8, tensor.name
    float_accuracy = keras_accuracy(load_keras_model(tiny_model), digits_data)
    assert keras_accuracy(load_keras_model(tmp_path / "clustered"), digits_data) >= float_accuracy - 0.05


def test_per_channel_clustering_bounds_each_output_channel(tiny_model, digits_data, tmp_path):
    config = ClusteringConfig(number_of_clusters=4, per_channel=True, epochs=1)
    cluster_weights(tiny_model, config, tmp_path / "clustered", data=digits_data)
    exported = export_tflite(tmp_path / "clustered", ExportConfig(), tmp_path / "tflite", data=digits_data)
    conv_kernels = [t for t in kernels(exported.tflite_path, "FLOAT32") if len(t.shape) == 4]
    assert conv_kernels
    for tensor in conv_kernels:
        per_channel = [len(np.unique(tensor.values[channel])) for channel in range(tensor.shape[0])]
        assert max(per_channel) <= 4, tensor.name
        assert len(np.unique(tensor.values)) > 4  # channels have their own centroids

"""tf.distribute for fine-tuning: strategy choice from the config and TF_CONFIG, the chief rule, the CLI's worker."""

import argparse
import json
import subprocess
import sys
import textwrap

import pytest

from edgeopt.components._shared import distribution
from edgeopt.components._shared.distribution import (
    distribute_options,
    is_chief,
    read_cluster,
    resolve_distribution,
    start_distribution,
    training_scope,
    worker_output_dir,
)
from edgeopt.components._shared.errors import ConfigError
from edgeopt.components._shared.fine_tuning_config import Distribution
from edgeopt.components._shared.job_lock import output_dir_lock
from edgeopt.components._shared.keras_bootstrap import tf
from edgeopt.components.cli_jobs import run_job
from edgeopt.components.pruning.config import PruningConfig
from edgeopt.components.quantization.config import QuantizationConfig
from edgeopt.components.tracking.cli_commands import NullJob, run_tracked


def tf_config(task_type="worker", index=0, *, workers=2, chief=False, **extra_tasks) -> dict:
    cluster = {"worker": [f"localhost:{2222 + i}" for i in range(workers)], **extra_tasks}
    if chief:
        cluster["chief"] = ["localhost:2221"]
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})}


def test_no_tf_config_is_no_cluster_and_the_chief():
    assert read_cluster({}) is None
    assert read_cluster({"TF_CONFIG": json.dumps({"task": {"type": "worker", "index": 0}})}) is None
    assert is_chief({})


def test_tf_config_of_a_tfjob_is_parsed():
    cluster = read_cluster(tf_config("worker", 1, workers=3, chief=True))
    assert (cluster.task_type, cluster.task_index, cluster.workers) == ("worker", 1, 4)


@pytest.mark.parametrize(
    ("environ", "chief"),
    [
        (tf_config("chief", 0, chief=True), True),
        (tf_config("worker", 0, chief=True), False),  # with a chief task, worker 0 is an ordinary worker
        (tf_config("worker", 0), True),  # without one, worker 0 is the chief (TensorFlow's rule)
        (tf_config("worker", 1), False),
    ],
)
def test_chief_is_the_chief_task_else_worker_zero(environ, chief):
    assert is_chief(environ) is chief


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"cluster": {"worker": ["a:1"]}}), "names no task"),
        (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}), "names no task"),
    ],
)
def test_a_broken_tf_config_is_a_typed_error(raw, match):
    with pytest.raises(ConfigError, match=match):
        read_cluster({"TF_CONFIG": raw})


def test_parameter_server_clusters_are_refused_naming_the_fix():
    with pytest.raises(ConfigError, match="remove the PS and Evaluator replicas"):
        read_cluster(tf_config("worker", 0, ps=["localhost:2300"]))


@pytest.mark.parametrize(
    ("environ", "gpus", "expected"),
    [
        (tf_config(), 0, Distribution.MULTI_WORKER),
        (tf_config(workers=1), 0, Distribution.NONE),  # a cluster of one trains alone
        (tf_config(workers=1), 2, Distribution.MIRRORED),
        ({}, 2, Distribution.MIRRORED),
        ({}, 1, Distribution.NONE),  # one GPU: the default strategy already uses it
        ({}, 0, Distribution.NONE),
    ],
)
def test_auto_picks_multi_worker_then_mirrored_then_none(environ, gpus, expected):
    assert resolve_distribution("auto", environ=environ, gpus=gpus) == expected


def test_explicit_choices_override_auto():
    assert resolve_distribution("none", environ=tf_config(), gpus=4) == Distribution.NONE
    assert resolve_distribution("mirrored", environ=tf_config(), gpus=1) == Distribution.MIRRORED
    assert resolve_distribution("multi_worker", environ=tf_config(workers=1), gpus=0) == Distribution.MULTI_WORKER


def test_multi_worker_without_tf_config_names_the_fix():
    with pytest.raises(ConfigError, match="needs TF_CONFIG.*run the step as a TFJob, or use distribution: auto"):
        resolve_distribution("multi_worker", environ={}, gpus=0)


def test_mirrored_without_a_gpu_names_the_fix():
    with pytest.raises(ConfigError, match="needs a visible GPU.*use distribution: auto or none"):
        resolve_distribution("mirrored", environ={}, gpus=0)


def test_start_distribution_checks_every_fine_tuning_step_before_any_work(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setattr(distribution, "visible_gpus", lambda: 0)
    configs = [QuantizationConfig(), PruningConfig(distribution="none")]
    assert start_distribution(configs) == [Distribution.NONE]  # quantize does not fine-tune: ignored
    with pytest.raises(ConfigError, match="mirrored needs a visible GPU"):
        start_distribution([*configs, PruningConfig(distribution="mirrored")])


def test_multi_worker_created_after_the_first_op_names_the_fix(monkeypatch):
    monkeypatch.setattr(distribution, "_STRATEGIES", {})
    monkeypatch.setenv("TF_CONFIG", tf_config()["TF_CONFIG"])
    tf.constant(1.0)  # TensorFlow's context is now initialized, as after reading data
    with pytest.raises(ConfigError, match="before TensorFlow runs its first operation.*start_distribution"):
        distribution.strategy_for(Distribution.MULTI_WORKER)


def test_training_scope_records_the_default_strategy(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with training_scope(PruningConfig(distribution="none")) as record:
        assert not tf.distribute.has_strategy()
    assert record.to_dict() == {
        "distribution": "none",
        "strategy": "DefaultDistributionStrategy",
        "replicas": 1,
        "workers": 1,
    }


def test_training_scope_keeps_a_callers_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope(), training_scope(PruningConfig(distribution="none")) as record:
        assert tf.distribute.get_strategy() is strategy
    assert (record.distribution, record.strategy, record.replicas) == ("caller", "MirroredStrategy", 1)


def test_the_training_stream_is_sharded_by_data(digits_data):
    dataset = distribute_options(tf.data.Dataset.range(4))
    assert dataset.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA
    stream = digits_data.training_dataset(32, seed=0, shuffle_buffer=64)
    assert stream.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA


def test_only_the_chief_writes_into_the_output_folder(tmp_path):
    out = tmp_path / "out"
    with worker_output_dir(out, tf_config("worker", 0)) as chief_dir:
        assert chief_dir == out
    with worker_output_dir(out, tf_config("worker", 1)) as private:
        assert private != out and private.is_dir()
        (private / "report.json").write_text("{}")
    assert not private.exists() and not out.exists()


def test_a_non_chief_cli_job_takes_no_lock_clears_nothing_and_logs_no_mlflow(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", tf_config("worker", 1)["TF_CONFIG"])
    out = tmp_path / "out"
    seen = {}

    def handler(args):
        seen.update(out=args.out, job=args.tracking_job)
        (tmp_path / "private").write_text(args.out)
        return 0

    args = argparse.Namespace(
        out=str(out), prepare=lambda args: None, handler=handler, tracked=True, no_tracking=False, verbose=0
    )
    with output_dir_lock(out):  # the chief holds the shared folder's lock
        (out / "report.json").write_text("the chief's result")
        assert run_job(args, run_tracked) == 0
    assert seen["out"] != str(out) and isinstance(seen["job"], NullJob)
    assert sorted(path.name for path in out.iterdir()) == [".edgeopt.lock", "report.json"]
    assert (out / "report.json").read_text() == "the chief's result"


MIRRORED_ON_TWO_CPUS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from edgeopt.components._shared.keras_bootstrap import keras, tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
    from edgeopt.components.distillation.core import Distiller

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6)).astype("float32")
    y = rng.integers(0, 3, 16)

    def step():
        keras.utils.set_random_seed(0)
        teacher = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
        student = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
        distiller = Distiller(student, teacher, alpha=0.5, temperature=2.0, cached=False)
        distiller.compile(optimizer=keras.optimizers.SGD(0.5))
        distiller.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        return student.get_weights()[0]

    one_device = step()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        two_replicas = step()
    print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                      "difference": float(np.abs(one_device - two_replicas).max())}))
    """
)


@pytest.mark.slow
def test_distillation_steps_alike_on_one_device_and_two_replicas():
    """The Distiller's own train_step scales its loss by the replicas, as Keras does for a compiled loss: two
    replicas of half the batch take the step one device takes (SGD shows a missing scaling; Adam would hide it)."""
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_ON_TWO_CPUS], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["replicas"] == 2
    assert measured["difference"] < 1e-5

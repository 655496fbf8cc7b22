"""The sampler at scale: Beam options for Dataflow, Flink and Spark are checked up front, portable pipelines are built
(not run: no cluster here) with the edgeopt image as their SDK harness, the graph holds no whole-dataset step, and a
distributed run's staging under --temp_location is collected and removed."""

import dataclasses
import json
import os
import shutil

import apache_beam as beam
import pytest
from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.localfilesystem import LocalFileSystem
from apache_beam.options.pipeline_options import (
    FlinkRunnerOptions,
    GoogleCloudOptions,
    PortableOptions,
    SparkRunnerOptions,
    WorkerOptions,
)
from apache_beam.pipeline import PipelineVisitor
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners.portability import job_server
from apache_beam.runners.portability.portable_runner import PortableRunner

from edgeopt.components._shared.errors import ConfigError, DataError
from edgeopt.components._shared.keras_bootstrap import tf
from edgeopt.components.calibration import beam_options, core
from edgeopt.components.calibration.beam_options import sampler_options
from edgeopt.components.calibration.config import CalibrationConfig
from edgeopt.components.calibration.core import build_sampler_pipeline, sample_calibration_data
from edgeopt.components.calibration.stats import FeatureStats

IMAGE = "registry.example.com/ml/edgeopt:0.1.0"
SCHEME = "edgeopt-test://"
SAMPLER_STEPS = ["ListFiles", "ReadTFRecords", "Parse", "TopNPerClass", "CountPerClass", "CountNonFinite",
                 "SourceStats", "Once", "WriteSample"]  # fmt: skip


class PrefixedLocalFileSystem(LocalFileSystem):
    """`edgeopt-test:///PATH` is the local PATH: a Beam filesystem with a scheme, so the sampler's URI code paths
    (listing, reading through Beam IO, staging under --temp_location) run offline, as they would on gs:// or s3://."""

    @classmethod
    def scheme(cls):
        return SCHEME.split(":")[0]

    @staticmethod
    def _local(path):
        return path[len(SCHEME) :] if path.startswith(SCHEME) else path

    def exists(self, path):
        return super().exists(self._local(path))

    def _list(self, dir_or_prefix):
        for item in super()._list(self._local(dir_or_prefix)):
            yield FileMetadata(SCHEME + item.path, item.size_in_bytes, item.last_updated_in_seconds)

    def metadata(self, path):
        item = super().metadata(self._local(path))
        return FileMetadata(SCHEME + item.path, item.size_in_bytes, item.last_updated_in_seconds)

    def create(self, path, *args, **kwargs):
        return super().create(self._local(path), *args, **kwargs)

    def open(self, path, *args, **kwargs):
        return super().open(self._local(path), *args, **kwargs)

    def delete(self, paths):
        for path in map(self._local, paths):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def uri(path) -> str:
    return SCHEME + os.path.abspath(path)


PORTABLE = {
    "PortableRunner": ["--runner=PortableRunner", "--job_endpoint=localhost:8099"],
    "FlinkRunner": ["--runner=FlinkRunner", "--flink_master=flink-jobmanager:8081", "--parallelism=8"],
    "SparkRunner": ["--runner=SparkRunner", "--spark_master_url=spark://spark-master:7077"],
}
HARNESS = ["--environment_type=DOCKER", f"--environment_config={IMAGE}", "--temp_location=s3://bucket/tmp"]


@pytest.fixture
def no_job_server(monkeypatch):
    """Any attempt to reach a job server or run the pipeline fails the test."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError("the pipeline tried to reach a job server")

    monkeypatch.setattr(job_server.ExternalJobServer, "start", refuse)
    monkeypatch.setattr(PortableRunner, "run_pipeline", refuse)
    return attempts


@pytest.mark.parametrize("runner", sorted(PORTABLE))
def test_portable_runner_builds_the_sampler_with_the_edgeopt_harness(runner, digits_examples, tmp_path, no_job_server):
    args = PORTABLE[runner] + HARNESS
    staging = uri(tmp_path / "staging")
    pipeline = build_sampler_pipeline(
        uri(digits_examples), CalibrationConfig(size=50, label_key="label"), staging, beam_pipeline_args=args
    )
    assert type(pipeline.runner).__name__ == runner
    portable = pipeline.options.view_as(PortableOptions)
    assert (portable.environment_type, portable.environment_config) == ("DOCKER", IMAGE)
    if runner == "FlinkRunner":
        flink = pipeline.options.view_as(FlinkRunnerOptions)
        assert (flink.flink_master, flink.parallelism) == ("flink-jobmanager:8081", 8)
    elif runner == "SparkRunner":
        assert pipeline.options.view_as(SparkRunnerOptions).spark_master_url == "spark://spark-master:7077"
    else:
        assert portable.job_endpoint == "localhost:8099"

    proto = PortableRunner.get_proto_pipeline(pipeline, pipeline.options)  # what the runner would submit
    environments = dict(proto.components.environments)
    docker = [
        env_id
        for env_id, env in environments.items()
        if env.urn == common_urns.environments.DOCKER.urn
        and beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image == IMAGE
    ]
    assert len(docker) == 1, {k: (e.urn, e.payload[:80]) for k, e in environments.items()}
    names = {t.unique_name: t for t in proto.components.transforms.values()}
    for step in SAMPLER_STEPS:
        assert step in names, sorted(names)
    assert names["Parse"].environment_id == names["WriteSample"].environment_id == docker[0]
    assert {t.environment_id for t in names.values() if t.environment_id} == set(docker)  # all in the edgeopt image
    assert no_job_server == [] and not os.path.exists(tmp_path / "staging")


def test_dataflow_options_are_parsed_and_the_graph_built(digits_examples, tmp_path, monkeypatch):
    # Beam's Dataflow validation asks GCS about the bucket's soft-delete policy; there is no network here.
    monkeypatch.setattr(GoogleCloudOptions, "_warn_if_soft_delete_policy_enabled", lambda self, name: None)
    args = ["--runner=DataflowRunner", "--project=my-project", "--region=us-central1",
            "--temp_location=gs://bucket/tmp", f"--sdk_container_image={IMAGE}", "--max_num_workers=20"]  # fmt: skip
    settings = sampler_options(args)
    assert (settings.runner, settings.distributed, settings.needs_uris) == ("DataflowRunner", True, True)
    pipeline = build_sampler_pipeline(
        uri(digits_examples),
        CalibrationConfig(size=50, label_key="label"),
        "gs://bucket/tmp/x",
        beam_pipeline_args=args,
    )
    cloud = pipeline.options.view_as(GoogleCloudOptions)
    assert (cloud.project, cloud.region, cloud.temp_location) == ("my-project", "us-central1", "gs://bucket/tmp")
    assert pipeline.options.view_as(WorkerOptions).sdk_container_image == IMAGE
    assert {t.unique_name for t in pipeline.to_runner_api().components.transforms.values()} >= set(SAMPLER_STEPS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runner=FlinkRunner", "--flink_mastr=host:8081"], r"--flink_mastr \(did you mean --flink_master\?\)"),
        (["--runner=Flonk"], r"--runner=Flonk is not a Beam runner; use one of .*FlinkRunner"),
        ("--runner=FlinkRunner", r"must be a list of strings"),
        ([1], r"must hold strings only"),
        (["--runner=FlinkRunner", "--flink_master=h:8081", "--temp_location=gs://b/t"], r"--environment_config="),
        (
            ["--runner=SparkRunner", "--spark_master_url=spark://h:7077", f"--sdk_container_image={IMAGE}",
             "--temp_location=gs://b/t"],
            r"portable runners ignore --sdk_container_image",
        ),
        (["--runner=FlinkRunner", "--flink_master=h:8081", "--environment_type=EXTERNAL",
          "--environment_config=localhost:50000"], r"--temp_location=URI"),
        (["--runner=PortableRunner", f"--environment_config={IMAGE}", "--temp_location=gs://b/t"], r"--job_endpoint="),
        (["--runner=DataflowRunner"], r"--project=.*--region=.*--temp_location=gs://.*--sdk_container_image="),
        (
            ["--runner=DataflowRunner", "--project=p", "--region=r", "--temp_location=/tmp/t",
             f"--sdk_container_image={IMAGE}"],
            r"--temp_location=gs://BUCKET/tmp",
        ),
    ],
    ids=["misspelt", "unknown-runner", "a-string", "not-strings", "flink-no-image", "spark-dataflow-flag",
         "external-no-temp", "portable-no-endpoint", "dataflow-bare", "dataflow-local-temp"],
)  # fmt: skip
def test_options_the_sampler_cannot_run_with_are_refused_with_the_fix(args, message):
    with pytest.raises(ConfigError, match=message):
        sampler_options(args)


def test_local_masters_and_loopback_run_in_this_process():
    assert not sampler_options(["--runner=FlinkRunner"]).distributed  # [auto]: Beam's local Flink, LOOPBACK
    assert not sampler_options(["--runner=SparkRunner", "--spark_master_url=local[2]"]).distributed
    assert not sampler_options(["--runner=PortableRunner", "--environment_type=LOOPBACK"]).distributed
    shared = sampler_options(
        ["--runner=FlinkRunner", "--flink_master=h:8081", "--environment_type=EXTERNAL",
         "--environment_config=localhost:50000", "--temp_location=/mnt/shared/tmp"]
    )  # fmt: skip
    assert shared.distributed and not shared.needs_uris  # a worker pool beside a shared mount may use paths


def test_containerized_workers_refuse_this_machines_files(digits_examples, tmp_path, no_job_server):
    args = PORTABLE["FlinkRunner"] + HARNESS
    with pytest.raises(ConfigError, match=r"FlinkRunner's workers cannot read or write this machine's files"):
        build_sampler_pipeline(digits_examples, CalibrationConfig(size=5), "s3://bucket/tmp/x", beam_pipeline_args=args)


def _graph(pipeline):
    nodes = []

    class Visitor(PipelineVisitor):
        def enter_composite_transform(self, node):
            nodes.append(node)

        def visit_transform(self, node):
            nodes.append(node)

    pipeline.visit(Visitor())
    return nodes


def test_every_step_after_parsing_is_a_bounded_combiner(digits_examples, tmp_path):
    """Memory is bounded by `size` per class, never by the input: everything that consumes the parsed records is a
    combiner whose accumulator is bounded (top-N with N = size, a count, per-feature statistics); no GroupByKey,
    ToList or whole-split collection."""
    config = CalibrationConfig(size=40, label_key="label")
    pipeline = build_sampler_pipeline(
        digits_examples, config, str(tmp_path), beam_pipeline_args=["--runner=FnApiRunner"]
    )
    nodes = _graph(pipeline)
    parse = next(node for node in nodes if node.full_label == "Parse")
    frontier, reached = set(parse.outputs.values()), []
    for node in nodes:  # visit order is topological
        if node.parts or not any(value in frontier for value in node.main_inputs.values()):
            continue
        if node.full_label.startswith("WriteSample"):
            continue
        reached.append(node)
        frontier |= set(node.outputs.values())
    assert {node.full_label.split("/")[0] for node in reached} == {
        "TopNPerClass", "CountPerClass", "CountNonFinite", "SourceStats"
    }  # fmt: skip
    combines = {}
    for node in reached:
        ancestor = node.parent
        while ancestor is not None and not isinstance(ancestor.transform, (beam.CombinePerKey, beam.CombineGlobally)):
            ancestor = ancestor.parent
        assert ancestor is not None, f"{node.full_label} handles records outside a combiner"
        combines[ancestor.full_label.split("/")[0]] = ancestor.transform.fn
    assert type(combines["TopNPerClass"]).__name__ == "TopCombineFn" and combines["TopNPerClass"]._n == config.size
    assert type(combines["CountPerClass"]).__name__ == type(combines["CountNonFinite"]).__name__ == "CountCombineFn"
    assert isinstance(combines["SourceStats"], FeatureStats)


def _with_float_label(folder):
    target = folder / "Split-train"
    target.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(target / "data.gz"), tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
        for index in range(20):
            feature = {
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=[float(index)])),
                "y": tf.train.Feature(float_list=tf.train.FloatList(value=[index / 7])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return folder


def test_a_float_label_is_refused_rather_than_one_class_per_value(tmp_path):
    source = _with_float_label(tmp_path / "src")
    with pytest.raises(DataError, match=r"label 'y' in .*data\.gz is a float .*unset label_key"):
        sample_calibration_data(source, CalibrationConfig(size=5, label_key="y"), tmp_path / "out")
    assert sample_calibration_data(source, CalibrationConfig(size=5), tmp_path / "plain").count == 5


@pytest.fixture
def pretend_distributed(monkeypatch):
    """Beam's in-process runner given a --temp_location, treated as a distributed one: what a Dataflow or Flink run
    does around its workers (URIs in, staging under --temp_location, collection) runs here for real; only the workers
    stay in-process."""
    real = beam_options.sampler_options

    def distributed(args):
        settings = real(args)
        return dataclasses.replace(settings, distributed=True) if settings.temp_location else settings

    for module in (beam_options, core):
        monkeypatch.setattr(module, "sampler_options", distributed)


def test_a_distributed_run_stages_under_temp_location_and_collects(digits_examples, tmp_path, pretend_distributed):
    """The input is listed and read by URI, a worker writes the sample under --temp_location, this process copies
    it into the output folder and removes the staging; the bytes equal a local run's."""
    config = CalibrationConfig(size=60, seed=3, label_key="label")
    local = sample_calibration_data(digits_examples, config, tmp_path / "local")
    (tmp_path / "temp").mkdir()
    args = ["--runner=FnApiRunner", f"--temp_location={uri(tmp_path / 'temp')}"]
    remote = sample_calibration_data(uri(digits_examples), config, tmp_path / "remote", beam_pipeline_args=args)
    assert remote.data_sha256 == local.data_sha256
    assert (tmp_path / "remote" / "data.tfrecord.gz").read_bytes() == (
        tmp_path / "local" / "data.tfrecord.gz"
    ).read_bytes()
    assert remote.manifest["source_fingerprint"] == local.manifest["source_fingerprint"]
    assert list((tmp_path / "temp").iterdir()) == []  # the staging folder under temp_location is gone


def test_kfp_face_hands_distributed_workers_the_artifact_uri(digits_examples, tmp_path, pretend_distributed):
    from kfp import dsl

    from edgeopt.components.calibration.kfp_component import sample_calibration_data as kfp_sampler

    class PodLocalCopy(dsl.Dataset):  # the launcher's download (or /gcs FUSE path): only this pod sees it
        path = "/nonexistent/pod-local-copy"

    (tmp_path / "temp").mkdir()
    examples = PodLocalCopy(name="examples", uri=uri(digits_examples), metadata={})
    calibration = dsl.Dataset(name="calibration", uri=str(tmp_path / "calibration"), metadata={})
    metrics = dsl.Metrics(name="metrics", uri=str(tmp_path / "metrics"), metadata={})
    kfp_sampler.python_func(
        examples=examples,
        calibration=calibration,
        metrics=metrics,
        config={"size": 32, "label_key": "label"},
        beam_pipeline_args=["--runner=FnApiRunner", f"--temp_location={uri(tmp_path / 'temp')}"],
    )
    assert calibration.metadata["count"] == 32 and (tmp_path / "calibration" / "data.tfrecord.gz").exists()
    local = sampler_options(["--runner=FnApiRunner"])
    assert local.input_location("/gcs/b/examples", "gs://b/examples") == "/gcs/b/examples"  # the pod's own copy
    flink = sampler_options(PORTABLE["FlinkRunner"] + HARNESS)
    assert flink.input_location("/gcs/b/examples", "gs://b/examples") == "gs://b/examples"


def test_tfx_face_on_a_distributed_runner_copies_no_input(digits_examples, tmp_path, pretend_distributed, monkeypatch):
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
    from tfx.types import standard_artifacts

    from edgeopt.components._shared import remote_files
    from edgeopt.components._shared import tfx_component as face
    from edgeopt.components.calibration import tfx_component

    monkeypatch.setattr(tfx_component, "sampler_options", beam_options.sampler_options)
    copied = []
    real_copy = remote_files.copy_tree
    monkeypatch.setattr(
        remote_files, "copy_tree", lambda source, target: copied.append(source) or real_copy(source, target)
    )
    (tmp_path / "temp").mkdir()
    examples, calibration = standard_artifacts.Examples(), face.CalibrationData()
    examples.uri = uri(digits_examples)
    calibration.uri = f"ram://calibration-{os.getpid()}-{tmp_path.name}"
    tf.io.gfile.makedirs(calibration.uri)
    args = ["--runner=FnApiRunner", f"--temp_location={uri(tmp_path / 'temp')}", f"--sdk_container_image={IMAGE}"]
    executor = tfx_component.CalibrationSamplerExecutor(BaseBeamExecutor.Context(beam_pipeline_args=args))
    executor.Do(
        {face.EXAMPLES_KEY: [examples]},
        {face.CALIBRATION_KEY: [calibration]},
        {face.CONFIG_KEY: json.dumps({"size": 16, "label_key": "label"}), face.COMPONENT_VERSION_KEY: "test"},
    )
    assert calibration.get_int_custom_property("count") == 16
    assert tf.io.gfile.exists(f"{calibration.uri}/data.tfrecord.gz")
    assert all(not source.startswith(SCHEME) for source in copied) and copied  # the output uploaded, no input copied


def test_pipeline_config_checks_beam_options_and_hands_them_to_both_pipelines(tmp_path):
    import yaml

    from edgeopt.pipelines.config import PipelineConfig
    from edgeopt.pipelines.kfp_pipeline import compile_pipeline
    from edgeopt.pipelines.tfx_pipeline import create_pipeline

    with pytest.raises(ConfigError, match=r"beam_pipeline_args.*--flink_mastr \(did you mean --flink_master\?\)"):
        PipelineConfig(beam_pipeline_args=["--runner=FlinkRunner", "--flink_mastr=h:8081"])
    args = PORTABLE["FlinkRunner"] + HARNESS
    config = PipelineConfig(beam_pipeline_args=args)
    spec = yaml.safe_load(compile_pipeline(config, tmp_path / "kfp.yaml").read_text())
    sampler = spec["root"]["dag"]["tasks"]["sample-calibration-data"]["inputs"]["parameters"]
    assert sampler["beam_pipeline_args"]["runtimeValue"]["constant"] == args
    roots = {name: str(tmp_path / name) for name in ("data_root", "pipeline_root", "serving_root")}
    assert create_pipeline(config, **roots).beam_pipeline_args == args
    assert create_pipeline(PipelineConfig(), **roots).beam_pipeline_args == ["--runner=FnApiRunner"]


def test_the_worker_image_carries_the_locked_beam_and_python():
    """Workers whose Beam SDK differs from the launcher's fail: the beam-worker stage's boot program must come from
    the Beam release and Python of requirements.lock, and the default target must stay the entrypoint-free image."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    dockerfile, lock = (root / "Dockerfile").read_text(), (root / "requirements.lock").read_text()
    beam = re.search(r"^apache-beam==(\S+)$", lock, re.M).group(1)
    python = re.search(r"Python (\d+\.\d+)", lock.splitlines()[0]).group(1)
    assert f"COPY --from=apache/beam_python{python}_sdk:{beam} /opt/apache/beam /opt/apache/beam" in dockerfile
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    worker = next(stage for stage in stages if stage.startswith("edgeopt AS beam-worker"))
    assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in worker
    assert stages[-1].strip() == "edgeopt"  # `docker build .` gives the KFP/TFX/TFJob image, no Beam entrypoint

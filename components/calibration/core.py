"""Calibration-data sampling with Apache Beam: a seeded, stratified, fixed-size sample of tf.Example records.

Selection is by hash: each record's key is sha256(seed, record bytes), and each class keeps its N smallest keys
(a streaming top-N, so memory is bounded by N per class, not by the input). Class quotas come from the full per-class
counts. Nothing depends on the order in which workers see records, so the same seed and input give byte-identical
output on any runner and at any parallelism (Beam's `Sample.FixedSizeGlobally` has no seed and cannot do this).
"""

import csv
import hashlib
import io
import json
import logging
import math
import os
import shutil
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from edgeopt.components._shared.atomic import atomic_output_dir
from edgeopt.components._shared.csv_examples import example_from_row
from edgeopt.components._shared.errors import ConfigError, DataError
from edgeopt.components._shared.streaming import first_examples
from edgeopt.components.calibration.beam_options import README, has_scheme, sampler_options
from edgeopt.components.calibration.config import CalibrationConfig, Stratification
from edgeopt.components.calibration.sources import csv_column_kinds, csv_header, source_files, source_fingerprint
from edgeopt.components.calibration.stats import FeatureStats, summarize

logger = logging.getLogger(__name__)
__all__ = ["source_files", "source_fingerprint"]  # listed here since the sampler's callers import them from core

DATA_FILE = "data.tfrecord.gz"
MANIFEST_FILE = "manifest.json"
NO_LABEL = "__all__"
# Errors raised inside Beam workers reach the launcher wrapped by the runner; the marker lets it recover the message.
ERROR_MARKER = "edgeopt-data-error: "
ERROR_END = " :edgeopt-end"


@dataclass(frozen=True)
class CalibrationResult:
    output_dir: str
    data_path: str
    count: int
    data_sha256: str
    manifest: dict

    def to_dict(self) -> dict:
        return asdict(self)


def _fail(message: str):
    raise ValueError(f"{ERROR_MARKER}{message}{ERROR_END}")


def record_key(seed: int, record: bytes) -> int:
    return int.from_bytes(hashlib.sha256(seed.to_bytes(8, "little", signed=True) + record).digest()[:8], "little")


def allocate(size: int, source_per_class: dict, stratification: Stratification) -> dict:
    """Per-class quotas summing to min(size, total), each at most the class's count.

    proportional: largest-remainder rounding of size * share, so each class is within one example of its target.
    balanced: equal shares, a class too small for its share gives the rest to the others.
    """
    classes = sorted(source_per_class, key=str)
    total = sum(source_per_class.values())
    size = min(size, total)
    if stratification == Stratification.PROPORTIONAL:
        exact = {c: size * source_per_class[c] / total for c in classes}
        quota = {c: math.floor(exact[c]) for c in classes}
        by_remainder = sorted(classes, key=lambda c: (-(exact[c] - quota[c]), str(c)))
        for c in by_remainder[: size - sum(quota.values())]:
            quota[c] += 1
        return quota
    quota = dict.fromkeys(classes, 0)
    open_classes = list(classes)
    remaining = size
    while remaining and open_classes:
        share, extra = divmod(remaining, len(open_classes))
        for index, c in enumerate(open_classes):
            quota[c] += min(share + (1 if index < extra else 0), source_per_class[c] - quota[c])
        remaining = size - sum(quota.values())
        open_classes = [c for c in open_classes if quota[c] < source_per_class[c]]
    return quota


class _ParseRecord(beam.DoFn):
    """(file, tf.Example bytes) -> (label, (key, record)); non-finite records go to a side output."""

    NON_FINITE = "non_finite"

    def __init__(self, label_key: str | None, seed: int):
        self.label_key = label_key
        self.seed = seed

    def setup(self):
        from google.protobuf.message import DecodeError
        from tensorflow.core.example import example_pb2

        self._example_class = example_pb2.Example
        self._decode_error = DecodeError

    def process(self, element):
        filename, record = element
        try:
            example = self._example_class.FromString(record)
        except self._decode_error as err:
            _fail(f"unparseable record in {filename} ({err}); the files must be gzipped tf.Example TFRecords")
        features = example.features.feature
        if self.label_key is not None:
            if self.label_key not in features:
                _fail(
                    f"a record in {filename} has no label feature '{self.label_key}'; set label_key to an existing one"
                )
            label_values = _values(features[self.label_key])
            if len(label_values) != 1:
                _fail(f"label '{self.label_key}' in {filename} holds {len(label_values)} values, expected one")
            label = label_values[0] if not isinstance(label_values[0], bytes) else label_values[0].decode()
            if isinstance(label, float):  # every distinct value would be a class holding up to `size` records
                _fail(
                    f"label '{self.label_key}' in {filename} is a float ({label}); stratify by an integer or string "
                    "class feature, or unset label_key to sample without stratification"
                )
        else:
            label = NO_LABEL
        values = {name: _values(feature) for name, feature in features.items()}
        if any(not math.isfinite(v) for vals in values.values() for v in vals if isinstance(v, float)):
            yield beam.pvalue.TaggedOutput(self.NON_FINITE, filename)
            return
        yield label, (record_key(self.seed, record), record)
        yield beam.pvalue.TaggedOutput("values", values)


def _values(feature) -> list:
    kind = feature.WhichOneof("kind")
    return list(getattr(feature, kind).value) if kind else []


class _CsvToExample(beam.DoFn):
    """(file, line) -> (file, tf.Example bytes), typed by the column kinds of the whole input (csv_examples.py)."""

    def __init__(self, header: list[str], kinds: dict[str, str]):
        self.header = header
        self.kinds = kinds

    def process(self, element):
        filename, line = element
        if not line.strip():
            return
        row = next(csv.reader(io.StringIO(line)))
        if len(row) != len(self.header):
            _fail(f"a row in {filename} has {len(row)} columns, the header has {len(self.header)}")
        yield filename, example_from_row(self.header, row, self.kinds).SerializeToString()


class _WriteSample(beam.DoFn):
    """Runs once: turns the per-class top-N lists into the final sample, writes the records and the manifest."""

    def __init__(self, config: CalibrationConfig, staging_dir: str, fingerprint: str):
        self.config = config
        self.staging_dir = staging_dir
        self.fingerprint = fingerprint

    def process(self, _, top_per_class, source_per_class, dropped, source_stats):
        import tensorflow as tf

        config = self.config
        if not source_per_class:
            _fail(f"the source is empty: no valid examples ({dropped} dropped as non-finite)")
        for name, entry in source_stats.items():
            if len(entry["lengths"]) > 1:
                _fail(
                    f"feature '{name}' has {sorted(entry['lengths'])} values in different records; "
                    "every record must give a feature the same shape"
                )
        total = sum(source_per_class.values())
        if config.size > total and not config.take_all_if_smaller:
            _fail(
                f"asked for {config.size} examples but the source holds {total} valid ones; lower size, or set "
                "take_all_if_smaller to take them all"
            )
        quota = allocate(config.size, source_per_class, config.stratification)
        selected = []
        for label in sorted(quota, key=str):
            selected += [(label, key, record) for key, record in sorted(top_per_class[label])[: quota[label]]]
        with tempfile.TemporaryDirectory(prefix="edgeopt-sample-") as work:  # the worker's own disk
            local_path = os.path.join(work, DATA_FILE)
            with tf.io.TFRecordWriter(local_path, tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
                for _, _, record in selected:
                    writer.write(record)
            data = Path(local_path).read_bytes()  # `size` records at most
        data_sha256 = hashlib.sha256(data).hexdigest()
        _write(FileSystems.join(self.staging_dir, DATA_FILE), data)
        sample_stats = FeatureStats()
        accumulator = sample_stats.create_accumulator()
        parser = _ParseRecord(None, 0)
        parser.setup()
        for _, _, record in selected:
            example = parser._example_class.FromString(record)
            sample_stats.add_input(accumulator, {n: _values(f) for n, f in example.features.feature.items()})
        manifest = {
            "count": len(selected),
            "requested": config.size,
            "took_everything": config.size > total,
            "per_class": {str(label): quota[label] for label in sorted(quota, key=str)},
            "source_per_class": {str(label): source_per_class[label] for label in sorted(source_per_class, key=str)},
            "source_count": total,
            "seed": config.seed,
            "label_key": config.label_key,
            "stratification": config.stratification.value,
            "splits": config.splits,
            "source_fingerprint": self.fingerprint,
            "data_file": DATA_FILE,
            "data_sha256": data_sha256,
            "dropped_non_finite": dropped,
            "sample_stats": summarize(accumulator),
            "source_stats": summarize(source_stats),
            "config": config.to_dict(),
        }
        _write(
            FileSystems.join(self.staging_dir, MANIFEST_FILE), json.dumps(manifest, indent=2, sort_keys=True).encode()
        )
        yield manifest


def _write(path: str, data: bytes) -> None:
    """Through Beam's filesystems, so a worker writes a local path, gs://, s3:// or hdfs:// alike (bytes as given)."""
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        handle.write(data)


def build_pipeline(pipeline, kind, files, config: CalibrationConfig, staging_dir: str, fingerprint: str):
    """The sampling graph; separate from running it so tests and other runners can reuse it."""
    if kind == "csv":
        header = csv_header(files)
        records = (
            pipeline
            | "ListFiles" >> beam.Create(files)
            | "ReadCsv" >> beam.io.ReadAllFromText(skip_header_lines=1, with_filename=True)
            | "CsvToExample" >> beam.ParDo(_CsvToExample(header, csv_column_kinds(files, header)))
        )
    else:
        records = (
            pipeline
            | "ListFiles" >> beam.Create(files)
            | "ReadTFRecords" >> beam.io.ReadAllFromTFRecord(with_filename=True)
        )
    parsed = records | "Parse" >> beam.ParDo(_ParseRecord(config.label_key, config.seed)).with_outputs(
        _ParseRecord.NON_FINITE, "values", main="keyed"
    )
    top_per_class = parsed.keyed | "TopNPerClass" >> beam.combiners.Top.SmallestPerKey(config.size)
    source_per_class = parsed.keyed | "CountPerClass" >> beam.combiners.Count.PerKey()
    dropped = parsed[_ParseRecord.NON_FINITE] | "CountNonFinite" >> beam.combiners.Count.Globally()
    source_stats = parsed["values"] | "SourceStats" >> beam.CombineGlobally(FeatureStats())
    return (
        pipeline
        | "Once" >> beam.Create([None])
        | "WriteSample"
        >> beam.ParDo(
            _WriteSample(config, staging_dir, fingerprint),
            top_per_class=beam.pvalue.AsDict(top_per_class),
            source_per_class=beam.pvalue.AsDict(source_per_class),
            dropped=beam.pvalue.AsSingleton(dropped),
            source_stats=beam.pvalue.AsSingleton(source_stats),
        )
    )


def build_sampler_pipeline(
    examples: str | os.PathLike,
    config: CalibrationConfig,
    staging_dir: str,
    *,
    beam_pipeline_args: list[str] | None = None,
) -> beam.Pipeline:
    """The sampler as a Beam pipeline, built and not run: `.run()` it, or inspect it (`to_runner_api()`).

    Args:
      examples: as for `sample_calibration_data`; a URI (gs://, s3://, hdfs://) when the runner's workers cannot see
        this machine's files.
      config: the sample's settings.
      staging_dir: where the pipeline's last step writes data.tfrecord.gz and manifest.json; on a distributed
        runner, a folder under `--temp_location` that the workers reach.
      beam_pipeline_args: Beam's options, checked by `sampler_options` (components/calibration/beam_options.py).

    Raises:
      ConfigError: bad Beam options, or local files for workers that cannot read them.
      DataError: as for `sample_calibration_data`, for problems found while listing the input.
    """
    settings = sampler_options(beam_pipeline_args)
    kind, files = source_files(examples, config.splits)
    if settings.needs_uris:
        local = [name for name in [*files, staging_dir] if not has_scheme(name)]
        if local:
            raise ConfigError(
                f"{settings.runner}'s workers cannot read or write this machine's files ({local[0]}); keep the "
                f"Examples on gs://, s3:// or hdfs:// and pass that URI (the TFX and KFP faces pass the artifact's "
                f"URI on such runners; see {README})"
            )
    pipeline = beam.Pipeline(options=settings.options)
    build_pipeline(pipeline, kind, files, config, str(staging_dir), source_fingerprint(files))
    return pipeline


def sample_calibration_data(
    examples: str | os.PathLike,
    config: CalibrationConfig,
    output_dir: str | os.PathLike,
    *,
    beam_pipeline_args: list[str] | None = None,
) -> CalibrationResult:
    """Samples the representative dataset for post-training quantization into `output_dir`.

    Args:
      examples: a TFX Examples folder (`Split-NAME/*.gz`) or CSV (a file, a folder of .csv files, or a glob), local
        or on a Beam filesystem (gs://, s3://, hdfs://).
      config: size, seed, label key and stratification.
      output_dir: a local (or mounted) folder; receives `data.tfrecord.gz` and `manifest.json`, published only when
        both are complete.
      beam_pipeline_args: Beam's options (default: DirectRunner), e.g. ["--direct_num_workers=2",
        "--direct_running_mode=multi_processing"], or a Dataflow, Flink or Spark runner (README, "Runners"). On a
        distributed runner a worker writes the sample under `--temp_location`, and this process copies it here.

    Raises:
      ConfigError: Beam options the sampler cannot run with (named, with the fix), before anything runs.
      DataError: empty source, missing label key, a float label, an unparseable record (naming its file), a feature
        whose shape differs between records, or fewer valid examples than `size` without `take_all_if_smaller`.

    Example:
      >>> sample_calibration_data("Examples/", CalibrationConfig(size=300, label_key="label"), "calibration/").count
      300
    """
    settings = sampler_options(beam_pipeline_args)
    with atomic_output_dir(output_dir) as staging:
        remote = None
        if settings.distributed:
            remote = FileSystems.join(settings.temp_location, f"edgeopt-calibration-{uuid.uuid4().hex}")
        try:
            pipeline = build_sampler_pipeline(
                examples, config, remote or str(staging), beam_pipeline_args=beam_pipeline_args
            )
            _run(pipeline, examples)
            if remote:
                _collect(remote, staging)
        finally:
            if remote:
                _remove_quietly(remote)
        manifest = json.loads((staging / MANIFEST_FILE).read_text())
    output_dir = Path(output_dir)
    return CalibrationResult(
        output_dir=str(output_dir),
        data_path=str(output_dir / DATA_FILE),
        count=manifest["count"],
        data_sha256=manifest["data_sha256"],
        manifest=manifest,
    )


def _run(pipeline: beam.Pipeline, examples) -> None:
    try:
        pipeline.run().wait_until_finish()
    except Exception as err:  # runners wrap worker errors in their own types
        text = str(err)
        if ERROR_MARKER in text:
            message = text.split(ERROR_MARKER, 1)[1].split(ERROR_END, 1)[0]
            raise DataError(message) from err
        if any(marker in text for marker in TRUNCATED_MARKERS):
            raise DataError(
                f"a record file under {examples} is truncated or not a TFRecord ({text.splitlines()[0][:200]}); "
                "rewrite the shard (rerun the ExampleGen) or remove it"
            ) from err
        raise


def _collect(remote: str, staging: Path) -> None:
    """Copies the two files a distributed run's worker wrote under --temp_location into the local staging folder."""
    for name in (DATA_FILE, MANIFEST_FILE):
        source = FileSystems.join(remote, name)
        with FileSystems.open(source, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            with open(staging / name, "wb") as target:
                shutil.copyfileobj(handle, target)
    logger.info("collected the sample from %s", remote)


def _remove_quietly(remote: str) -> None:
    try:
        written = [FileSystems.join(remote, name) for name in (DATA_FILE, MANIFEST_FILE)]
        present = [path for path in written if FileSystems.exists(path)]
        if present:
            FileSystems.delete(present)
        if FileSystems.exists(remote):  # a folder on local or HDFS paths; object stores (gs://, s3://) have none
            FileSystems.delete([remote])
    except Exception as err:  # a leftover staging folder under temp_location must not fail the sample
        logger.warning("could not remove the sampler's staging folder %s: %s", remote, err)


# What Beam's TFRecord and gzip readers say about a cut-off or foreign file (their errors carry no type of ours).
TRUNCATED_MARKERS = ("Not a valid TFRecord", "Compressed file ended", "while decompressing", "CRC check failed")


def read_manifest(calibration_dir: str | os.PathLike) -> dict:
    path = Path(calibration_dir) / MANIFEST_FILE
    if not path.exists():
        raise DataError(f"{calibration_dir} is not a calibration artifact (no {MANIFEST_FILE}); run `edgeopt sample`")
    return json.loads(path.read_text())


def load_calibration_inputs(calibration_dir: str | os.PathLike, data):
    """The artifact's examples as model inputs, parsed exactly like the training data (data spec or input_fn)."""
    manifest = read_manifest(calibration_dir)
    data_file = Path(calibration_dir) / manifest["data_file"]
    batches = data.file_batches([str(data_file)], f"calibration artifact {data_file}")
    inputs, _ = first_examples(batches, int(manifest["count"]))  # the artifact holds what the sampler chose
    return inputs

"""Calibration-data sampling with Apache Beam: a seeded, stratified, fixed-size sample of tf.Example records.

Selection is by hash: each record's key is sha256(seed, record bytes), and each class keeps its N smallest keys
(a streaming top-N, so memory is bounded by N per class, not by the input). Class quotas come from the full per-class
counts. Nothing depends on the order in which workers see records, so the same seed and input give byte-identical
output on any runner and at any parallelism (Beam's `Sample.FixedSizeGlobally` has no seed and cannot do this).
"""

import csv
import glob
import hashlib
import io
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from edgeopt.components._shared.atomic import atomic_output_dir
from edgeopt.components._shared.csv_examples import column_kinds, example_from_row
from edgeopt.components._shared.errors import DataError
from edgeopt.components._shared.fingerprint import files_fingerprint
from edgeopt.components._shared.streaming import first_examples
from edgeopt.components.calibration.config import CalibrationConfig, Stratification

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


def source_files(examples: str | os.PathLike, splits: list[str]) -> tuple[str, list[str]]:
    """('tfrecord' | 'csv', files): the Split-NAME/ files of a TFX Examples folder, or CSV files (a file, a folder
    of .csv, or a glob)."""
    examples = str(examples)
    path = Path(examples)
    if path.is_dir() and any(path.glob("Split-*")):
        files = []
        for split in splits:
            folder = path / f"Split-{split}"
            if not folder.is_dir():
                found = sorted(p.name for p in path.glob("Split-*"))
                raise DataError(f"{examples} has no Split-{split}/ folder (found {found}); set splits to existing ones")
            files += sorted(str(p) for p in folder.iterdir() if p.is_file())
        if not files:
            raise DataError(f"the source is empty: no files in {examples}/Split-{{{','.join(splits)}}}/")
        for name in files:
            _check_gzip(name)
        return "tfrecord", files
    if path.is_file():
        csv_files = [str(examples)]
    elif path.is_dir():
        csv_files = sorted(str(p) for p in path.glob("*.csv"))
    else:  # a glob, relative or absolute (pathlib's glob takes relative patterns only)
        csv_files = sorted(glob.glob(str(examples)))
    if not csv_files:
        raise DataError(f"the source is empty: {examples} is neither a TFX Examples folder (Split-NAME/) nor CSV files")
    return "csv", csv_files


def _check_gzip(name: str):
    """Beam's reader reports a broken gzip stream without the file's name; check each file's header first."""
    if not name.endswith(".gz"):
        return
    with open(name, "rb") as handle:
        header = handle.read(2)
    if header and header != b"\x1f\x8b":
        raise DataError(f"{name} is not gzip-compressed; Examples files must be gzipped tf.Example TFRecords")


def source_fingerprint(files: list[str]) -> str:
    """The sampled files' fingerprint (fingerprint.py), names relative to the Examples folder (the common folder
    above each file's own), so a split's file reads `Split-train/data.gz` as in the job's dataset fingerprint."""
    root = os.path.commonpath([os.path.dirname(os.path.dirname(os.path.abspath(name))) for name in files])
    return files_fingerprint([os.path.abspath(name) for name in files], root)


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


class FeatureStats(beam.CombineFn):
    """Per feature: value count per record (its shape), and min, max, sum, count of numeric values."""

    def create_accumulator(self):
        return {}

    def add_input(self, accumulator, values):
        for name, vals in values.items():
            entry = accumulator.setdefault(
                name, {"lengths": set(), "min": math.inf, "max": -math.inf, "sum": 0.0, "n": 0}
            )
            entry["lengths"].add(len(vals))
            numeric = [float(v) for v in vals if not isinstance(v, bytes)]
            if numeric:
                entry["min"] = min(entry["min"], min(numeric))
                entry["max"] = max(entry["max"], max(numeric))
                entry["sum"] += math.fsum(numeric)
                entry["n"] += len(numeric)
        return accumulator

    def merge_accumulators(self, accumulators):
        merged = {}
        for accumulator in accumulators:
            for name, entry in accumulator.items():
                target = merged.setdefault(
                    name, {"lengths": set(), "min": math.inf, "max": -math.inf, "sum": 0.0, "n": 0}
                )
                target["lengths"] |= entry["lengths"]
                target["min"] = min(target["min"], entry["min"])
                target["max"] = max(target["max"], entry["max"])
                target["sum"] += entry["sum"]
                target["n"] += entry["n"]
        return merged

    def extract_output(self, accumulator):
        return accumulator


def summarize(stats: dict) -> dict:
    return {
        name: {"min": entry["min"], "max": entry["max"], "mean": entry["sum"] / entry["n"]}
        for name, entry in sorted(stats.items())
        if entry["n"]
    }


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
        data_path = os.path.join(self.staging_dir, DATA_FILE)
        with tf.io.TFRecordWriter(data_path, tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
            for _, _, record in selected:
                writer.write(record)
        with tf.io.gfile.GFile(data_path, "rb") as handle:
            data_sha256 = hashlib.sha256(handle.read()).hexdigest()
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
        with tf.io.gfile.GFile(os.path.join(self.staging_dir, MANIFEST_FILE), "w") as handle:
            handle.write(json.dumps(manifest, indent=2, sort_keys=True))
        yield manifest


def _csv_header(files: list[str]) -> list[str]:
    headers = []
    for name in files:
        with open(name, newline="", encoding="utf-8") as handle:
            headers.append(next(csv.reader(handle), []))
    if not headers[0] or any(header != headers[0] for header in headers):
        raise DataError(f"CSV files {files} must share one non-empty header row")
    return headers[0]


def _csv_column_kinds(files: list[str], header: list[str]) -> dict[str, str]:
    """One streaming pass over the CSV files: each column's kind, so every row is typed as CsvExampleGen would."""

    def rows():
        for name in files:
            with open(name, newline="", encoding="utf-8") as handle:
                reader = csv.reader(handle)
                next(reader, None)
                yield from reader

    return column_kinds(header, rows())


def build_pipeline(pipeline, kind, files, config: CalibrationConfig, staging_dir: str, fingerprint: str):
    """The sampling graph; separate from running it so tests and other runners can reuse it."""
    if kind == "csv":
        header = _csv_header(files)
        records = (
            pipeline
            | "ListFiles" >> beam.Create(files)
            | "ReadCsv" >> beam.io.ReadAllFromText(skip_header_lines=1, with_filename=True)
            | "CsvToExample" >> beam.ParDo(_CsvToExample(header, _csv_column_kinds(files, header)))
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


def sample_calibration_data(
    examples: str | os.PathLike,
    config: CalibrationConfig,
    output_dir: str | os.PathLike,
    *,
    beam_pipeline_args: list[str] | None = None,
) -> CalibrationResult:
    """Samples the representative dataset for post-training quantization into `output_dir`.

    Args:
      examples: a TFX Examples folder (`Split-NAME/*.gz`) or CSV (a file, a folder of .csv files, or a glob).
      config: size, seed, label key and stratification.
      output_dir: receives `data.tfrecord.gz` and `manifest.json`, published only when both are complete.
      beam_pipeline_args: passed unchanged to Beam (default: DirectRunner), e.g.
        ["--direct_num_workers=2", "--direct_running_mode=multi_processing"] or a Dataflow/Flink/Spark runner.

    Raises:
      DataError: empty source, missing label key, an unparseable record (naming its file), a feature whose shape
        differs between records, or fewer valid examples than `size` without `take_all_if_smaller`.

    Example:
      >>> sample_calibration_data("Examples/", CalibrationConfig(size=300, label_key="label"), "calibration/").count
      300
    """
    kind, files = source_files(examples, config.splits)
    fingerprint = source_fingerprint(files)
    with atomic_output_dir(output_dir) as staging:
        options = PipelineOptions(list(beam_pipeline_args or []))
        try:
            with beam.Pipeline(options=options) as pipeline:
                build_pipeline(pipeline, kind, files, config, str(staging), fingerprint)
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
        manifest = json.loads((staging / MANIFEST_FILE).read_text())
    output_dir = Path(output_dir)
    return CalibrationResult(
        output_dir=str(output_dir),
        data_path=str(output_dir / DATA_FILE),
        count=manifest["count"],
        data_sha256=manifest["data_sha256"],
        manifest=manifest,
    )


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

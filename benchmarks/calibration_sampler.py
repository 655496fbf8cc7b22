"""Benchmark: the Beam calibration sampler against a plain single-process Python reservoir loop.

Not a test. Writes N synthetic gzipped tf.Example records (16 float features, 10 classes, 8 shards), then measures
wall time, throughput and peak memory (resident set of the whole process tree, sampled every 50 ms) of:
  1. edgeopt's sampler, DirectRunner in-memory mode;
  2. edgeopt's sampler, DirectRunner multi-processing mode with 2 workers;
  3. a reservoir loop (Algorithm R, one pass, parses and checks each record like the sampler does).
Each runs in its own subprocess so peak memory is its own. Usage:
  scripts/in-env python benchmarks/calibration_sampler.py [--examples 1000000] [--size 1000]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "calibration_sampler.json"
SHARDS = 8
FEATURES = 16


def write_source(folder: Path, count: int):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    (folder / "Split-train").mkdir(parents=True)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    per_shard = count // SHARDS
    for shard in range(SHARDS):
        values = rng.normal(size=(per_shard, FEATURES)).astype(np.float32)
        labels = rng.integers(0, 10, size=per_shard)
        path = folder / "Split-train" / f"data-{shard:05d}-of-{SHARDS:05d}.gz"
        with tf.io.TFRecordWriter(str(path), options) as writer:
            for row, label in zip(values, labels, strict=True):
                example = tf.train.Example(
                    features=tf.train.Features(
                        feature={
                            "x": tf.train.Feature(float_list=tf.train.FloatList(value=row)),
                            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
                        }
                    )
                )
                writer.write(example.SerializeToString())


BEAM_PROGRAM = """
import sys
from edgeopt.components.calibration.config import CalibrationConfig
from edgeopt.components.calibration.core import sample_calibration_data
source, out, size, args = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
result = sample_calibration_data(source, CalibrationConfig(size=size, label_key="label"), out, beam_pipeline_args=args)
print(result.count)
"""

RESERVOIR_PROGRAM = """
import glob, math, random, sys
import tensorflow as tf
from tensorflow.core.example import example_pb2
source, size = sys.argv[1], int(sys.argv[2])
rng, reservoir, seen = random.Random(0), [], 0
files = sorted(glob.glob(source + "/Split-train/*.gz"))
for record in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator():
    example = example_pb2.Example.FromString(record)
    values = example.features.feature["x"].float_list.value
    if not all(math.isfinite(v) for v in values):
        continue
    seen += 1
    if len(reservoir) < size:
        reservoir.append(record)
    else:
        slot = rng.randrange(seen)
        if slot < size:
            reservoir[slot] = record
print(len(reservoir))
"""


def run_measured(command: list[str]) -> dict:
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    watcher = psutil.Process(process.pid)

    def sample():
        nonlocal peak
        while process.poll() is None:
            try:
                tree = [watcher, *watcher.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    stdout, stderr = process.communicate()
    thread.join()
    if process.returncode:
        raise RuntimeError(f"{command[:3]} failed:\n{stderr[-3000:]}")
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": peak / 2**20, "selected": int(stdout.split()[-1])}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeopt-bench-") as tmp:
        source = Path(tmp) / "source"
        started = time.perf_counter()
        write_source(source, args.examples)
        count = SHARDS * (args.examples // SHARDS)
        print(f"wrote {count} examples in {time.perf_counter() - started:.1f} s", flush=True)
        runs = {
            "beam_in_memory": [sys.executable, "-c", BEAM_PROGRAM, str(source), f"{tmp}/a", str(args.size)],
            "beam_2_workers": [
                sys.executable, "-c", BEAM_PROGRAM, str(source), f"{tmp}/b", str(args.size),
                "--direct_num_workers=2", "--direct_running_mode=multi_processing",
            ],
            "python_reservoir": [sys.executable, "-c", RESERVOIR_PROGRAM, str(source), str(args.size)],
        }  # fmt: skip
        results = {}
        for name, command in runs.items():
            measured = run_measured(command)
            measured["examples_per_second"] = count / measured["seconds"]
            results[name] = measured
            print(f"{name:18} {measured['seconds']:8.1f} s {measured['examples_per_second']:10.0f} ex/s "
                  f"peak {measured['peak_rss_mb']:7.0f} MB", flush=True)  # fmt: skip
    import apache_beam

    report = {
        "examples": count,
        "sample_size": args.size,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "apache_beam": apache_beam.__version__,
        "python": platform.python_version(),
        "results": results,
        "throughput_ratio_beam_in_memory_vs_reservoir": results["beam_in_memory"]["examples_per_second"]
        / results["python_reservoir"]["examples_per_second"],
    }
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

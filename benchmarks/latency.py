"""Benchmark helper: single-example LiteRT latency of many .tflite files at several thread counts, interleaved.

Every (model, threads) pair gets its own interpreter, warmed up first. Then `rounds` rounds visit all pairs in a
fresh seeded random order, each pair timing a burst of invocations (sized to about `burst_s` seconds from its
warm-up speed). Noise from other work on the machine is spread over every pair instead of hitting whichever model
ran at the wrong moment, so ratios measured here are comparable; absolute times are not.
"""

import time
from collections import defaultdict

import numpy as np

from edgeopt.components._shared.tflite_runtime import TfliteRunner


def measure(
    paths: dict[str, str],
    example: np.ndarray,
    *,
    threads: tuple[int, ...] = (1, 2),
    warmup_runs: int = 50,
    rounds: int = 10,
    burst_s: float = 0.04,
    min_burst: int = 5,
    max_burst: int = 200,
    seed: int = 0,
) -> dict[str, dict[str, dict]]:
    """Returns {name: {threads: {"p50", "p90" (ms), "runs"}}} for every path and thread count."""
    runners, inputs, bursts = {}, {}, {}
    for name, path in paths.items():
        for count in threads:
            runner = TfliteRunner(path, num_threads=count)
            runner.predict_all(example[np.newaxis])  # sizes the interpreter for batch 1
            prepared = runner.quantize_inputs(example[np.newaxis])  # by input name, as invoke_prepared takes them
            started = time.perf_counter()
            for _ in range(warmup_runs):
                runner.invoke_prepared(prepared)
            per_run = (time.perf_counter() - started) / max(1, warmup_runs)
            key = (name, count)
            runners[key], inputs[key] = runner, prepared
            bursts[key] = int(np.clip(burst_s / max(per_run, 1e-7), min_burst, max_burst))
    samples = defaultdict(list)
    keys = list(runners)
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        for index in rng.permutation(len(keys)):
            key = keys[index]
            runner, prepared = runners[key], inputs[key]
            timings = samples[key]
            for _ in range(bursts[key]):
                start = time.perf_counter()
                runner.invoke_prepared(prepared)
                timings.append(time.perf_counter() - start)
    results: dict[str, dict[str, dict]] = defaultdict(dict)
    for (name, count), timings in samples.items():
        values = np.asarray(timings) * 1e3
        results[name][str(count)] = {
            "p50": float(np.percentile(values, 50)),
            "p90": float(np.percentile(values, 90)),
            "runs": len(values),
        }
    return dict(results)

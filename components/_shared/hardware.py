"""What measured a latency: the CPU, its vector ISA, the thread count and the runtime versions, and whether a
speedup between two measured latencies is larger than what the measurement can resolve.

int8 kernels are fast only on CPUs with the right instructions: on this project's AVX2-only AMD EPYC hosts full
int8 ran at 0.6-1.0x float speed, on an AVX-512 VNNI Xeon at 3.3x. A latency without its hardware is not a fact.
"""

import functools
import importlib.metadata
import os
import platform
import time
from pathlib import Path

#: ISA extensions that decide int8 and float speed in XNNPACK, as /proc/cpuinfo names them.
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_int8",
)
#: Packages whose versions decide what a latency means.
STACK_PACKAGES = ("edgeopt", "tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert")

#: A p50 below this many timer-overhead units is mostly the timer and the Python call around `invoke()`.
RESOLUTION_FACTOR = 50
#: Never trust a single-invocation p50 below this, whatever the timer says (tiny tabular models: 1-3 us gave
#: speedups from 0.5 to 2.1 across identical runs on this project's machines).
MIN_RESOLVABLE_MS = 0.01


def _cpuinfo() -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo ({} where there is none, e.g. macOS)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def package_versions(packages=STACK_PACKAGES) -> dict[str, str | None]:
    """Installed versions of `packages` (None where one is missing), plus Python's."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


@functools.cache
def timer_overhead_ms(samples: int = 2000) -> float:
    """Median cost of one `perf_counter()` pair in ms: the floor under any single-invocation timing."""
    deltas = []
    for _ in range(samples):
        start = time.perf_counter()
        deltas.append(time.perf_counter() - start)
    deltas.sort()
    return deltas[len(deltas) // 2] * 1e3


def resolvable_ms() -> float:
    """The smallest p50 latency this machine's single-invocation timing can tell apart from noise."""
    return max(MIN_RESOLVABLE_MS, RESOLUTION_FACTOR * timer_overhead_ms())


@functools.cache
def _machine() -> dict:
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    return {
        "cpu_model": info.get("model name") or platform.processor() or platform.machine(),
        "machine": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
        "platform": platform.platform(),
    }


def describe_hardware(num_threads: int) -> dict:
    """The hardware and runtime a latency was measured on, as report.json and MLflow record it."""
    return {
        **_machine(),
        "num_threads": num_threads,
        "timer_resolvable_ms": round(resolvable_ms(), 6),
        "versions": package_versions(),
    }


def hardware_summary(hardware: dict) -> str:
    """One line for reports: `AMD EPYC, 2 CPUs, avx2+fma, 1 thread, ai-edge-litert 2.1.0`."""
    isa = "+".join(flag for flag in hardware.get("isa", []) if flag not in ("sse4_2", "avx")) or "no AVX2"
    threads = hardware.get("num_threads")
    litert = (hardware.get("versions") or {}).get("ai-edge-litert")
    return (
        f"{hardware.get('cpu_model', '?')}, {hardware.get('logical_cpus', '?')} CPUs, {isa}, "
        f"{threads} thread{'s' if threads != 1 else ''}, ai-edge-litert {litert or '?'}"
    )


def speedup_significance(
    baseline_ms: dict[str, float], candidate_ms: dict[str, float], *, floor_ms: float | None = None
) -> tuple[bool, str]:
    """Whether baseline p50 / candidate p50 is a measured difference rather than noise, and why not when it is not.

    Not significant when either p50 is under the timer's resolvable floor, or when the two p50s differ by less than
    the wider of their spreads (p90 - p50): the latencies' distributions overlap more than they differ.
    """
    floor_ms = resolvable_ms() if floor_ms is None else floor_ms
    fastest_p50 = min(baseline_ms["p50"], candidate_ms["p50"])
    if fastest_p50 < floor_ms:
        return (
            False,
            f"p50 {fastest_p50:.4f} ms is below what one timed invocation resolves here ({floor_ms:.3f} ms)",
        )
    spread = max(baseline_ms["p90"] - baseline_ms["p50"], candidate_ms["p90"] - candidate_ms["p50"])
    difference = abs(baseline_ms["p50"] - candidate_ms["p50"])
    if difference <= spread:
        return False, f"p50 difference {difference:.4f} ms is within the spread (p90 - p50 up to {spread:.4f} ms)"
    return True, ""

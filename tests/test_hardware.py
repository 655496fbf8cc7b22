"""The hardware record behind every latency, and the rule that flags a speedup as not significant."""

from edgeopt.components._shared.hardware import (
    describe_hardware,
    hardware_summary,
    resolvable_ms,
    speedup_significance,
    timer_overhead_ms,
)


def test_describe_hardware_names_cpu_isa_threads_and_litert():
    hardware = describe_hardware(num_threads=2)
    assert hardware["num_threads"] == 2
    assert hardware["cpu_model"]
    assert hardware["logical_cpus"] >= 1
    flags = open("/proc/cpuinfo").read().split()
    assert ("avx2" in hardware["isa"]) == ("avx2" in flags)
    assert hardware["versions"]["ai-edge-litert"]
    summary = hardware_summary(hardware)
    assert hardware["cpu_model"] in summary and "2 threads" in summary


def test_timer_floor_is_positive_and_above_the_minimum():
    assert 0 < timer_overhead_ms() < 1.0
    assert resolvable_ms() >= 0.01


def test_a_clear_speedup_is_significant():
    significant, reason = speedup_significance({"p50": 1.0, "p90": 1.05}, {"p50": 0.3, "p90": 0.32}, floor_ms=0.01)
    assert significant and reason == ""


def test_microsecond_latencies_are_not_significant():
    significant, reason = speedup_significance(
        {"p50": 0.002, "p90": 0.003}, {"p50": 0.001, "p90": 0.0011}, floor_ms=0.01
    )
    assert not significant and "below what one timed invocation resolves" in reason


def test_overlapping_spreads_are_not_significant():
    significant, reason = speedup_significance({"p50": 1.0, "p90": 1.5}, {"p50": 0.8, "p90": 0.9}, floor_ms=0.01)
    assert not significant and "within the spread" in reason

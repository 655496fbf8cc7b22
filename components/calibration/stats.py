"""Feature statistics of the calibration sample and its source, as one Beam combiner (bounded per feature)."""

import math

import apache_beam as beam


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

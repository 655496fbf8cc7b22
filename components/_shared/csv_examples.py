"""CSV rows as tf.Example, by one rule wherever edgeopt reads CSV (the pipeline's read step, the calibration
sampler): as TFX's CsvExampleGen infers them, a column whose every value is an integer is int64, one whose every
value is a number is float, anything else bytes. The same CSV therefore gives the same feature types everywhere."""

from collections.abc import Iterable

INT64, FLOAT, BYTES = "int64", "float", "bytes"


def _kind_of(text: str) -> str:
    try:
        int(text)
        return INT64
    except ValueError:
        pass
    try:
        float(text)
        return FLOAT
    except ValueError:
        return BYTES


def column_kinds(header: list[str], rows: Iterable[list[str]]) -> dict[str, str]:
    """{column: int64 | float | bytes} over every row (streamed: memory is one row), the widest kind seen winning."""
    order = {INT64: 0, FLOAT: 1, BYTES: 2}
    kinds = dict.fromkeys(header, INT64)
    for row in rows:
        if not row:
            continue
        for name, text in zip(header, row, strict=False):
            kind = _kind_of(text)
            if order[kind] > order[kinds[name]]:
                kinds[name] = kind
    return kinds


def example_from_row(header: list[str], row: list[str], kinds: dict[str, str]):
    """One CSV row as a tf.Example (a protobuf message; serialize it with .SerializeToString())."""
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    for name, text in zip(header, row, strict=True):
        feature = example.features.feature[name]
        kind = kinds[name]
        if kind == INT64:
            feature.int64_list.value.append(int(text))
        elif kind == FLOAT:
            feature.float_list.value.append(float(text))
        else:
            feature.bytes_list.value.append(text.encode())
    return example

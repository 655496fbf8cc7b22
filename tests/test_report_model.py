"""report.json has one typed definition: every producer's output validates against it, a drifting field fails the
job that wrote it, and the published JSON schemas are current."""

import json

import pydantic
import pytest

from edgeopt.components._shared.report_model import Report, validate_candidate, validate_report
from edgeopt.components.docs import SCHEMAS, update_schema
from edgeopt.components.recipes.config import RecipeConfig
from edgeopt.components.recipes.core import optimize


@pytest.fixture(scope="module")
def report(tiny_model, digits_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("typed-report")
    optimize(tiny_model, [RecipeConfig.builtin("ptq_dynamic")], out, data=digits_data)
    return json.loads((out / "report.json").read_text())


def test_optimize_writes_a_report_of_the_published_type(report):
    parsed = Report.model_validate(report)
    assert parsed.candidates[0].recipe == "ptq_dynamic" and parsed.candidates[0].gate.passed in (True, False)
    assert parsed.baseline.metric.name == "accuracy"
    hardware = report["hardware"]
    assert hardware["cpu_model"] and hardware["num_threads"] == 1 and "ai-edge-litert" in hardware["versions"]
    assert isinstance(report["candidates"][0]["speedup_significant"], bool)


def test_a_field_of_the_wrong_type_or_an_unknown_key_is_refused(report):
    wrong = json.loads(json.dumps(report))
    wrong["candidates"][0]["tflite_bytes"] = "large"
    with pytest.raises(pydantic.ValidationError, match="tflite_bytes"):
        validate_report(wrong)
    unknown = dict(report, surprise=1)
    with pytest.raises(pydantic.ValidationError, match="surprise"):
        validate_report(unknown)
    with pytest.raises(pydantic.ValidationError, match="gate"):
        validate_candidate({key: value for key, value in report["candidates"][0].items() if key != "gate"})


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_published_schemas_are_current(name):
    assert update_schema(name, write=False), f"run `make docs` to refresh configs/schemas/{name}"

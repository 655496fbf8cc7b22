"""Checks that a compiled pipeline (KFP YAML or TFX KubeflowV2 JSON) is fit for a cluster: no local path, no
unpublished default image. Used by the tests and before submitting."""

import json
import re
from pathlib import Path

import yaml

from edgeopt.components._shared.errors import ConfigError
from edgeopt.components._shared.kfp_component import VERSIONED_IMAGE

CLOUD_SCHEMES = ("gs://", "s3://", "hdfs://", "https://", "http://")
# Values that only exist on the machine that compiled the spec (or in one pod's ephemeral disk).
_LOCAL_VALUE = re.compile(r"^(file://|sqlite:///|/(tmp|home|root|work|data|serving|pipeline-root|mnt|Users)(/|$))")
_LOCAL_INSIDE = re.compile(r"(file://|sqlite:///)\S*")


def _strings(value, where: str = ""):
    """Every string in a nested structure with its location."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")
    elif isinstance(value, str):
        yield where, value


def _load(spec) -> dict:
    if isinstance(spec, dict):
        return spec
    text = Path(spec).read_text() if isinstance(spec, Path) or "\n" not in str(spec) else str(spec)
    # JSON is YAML; a KFP file holds the pipeline spec and, with Kubernetes settings, a platform spec document.
    documents = [document for document in yaml.safe_load_all(text) if document]
    return documents[0] if len(documents) == 1 else {"documents": documents}


def _embedded(where: str, value: str):
    """Strings inside JSON-valued strings (TFX serialises exec properties such as the tracking config as JSON)."""
    if value.lstrip().startswith(("{", "[")):
        try:
            yield from _strings(json.loads(value), where)
        except ValueError:
            return


def deployment_problems(spec, *, default_image: str = VERSIONED_IMAGE) -> list[str]:
    """What keeps a compiled spec from running on a cluster: local paths (file://, sqlite:///, /tmp, /data, ...) and
    the unpublished default image. `spec`: a dict, a file path, or the file's text."""
    problems = []
    for where, value in _strings(_load(spec)):
        for inner_where, inner in [(where, value), *_embedded(where, value)]:
            if _LOCAL_VALUE.match(inner) or (inner_where != where and _LOCAL_INSIDE.search(inner)):
                problems.append(f"{inner_where}: local path {inner[:120]!r}")
        if where.endswith(".image") and value == default_image:
            problems.append(f"{where}: default image {value!r} is not in any registry; compile with --image")
    return problems


def check_cloud_spec(spec, *, default_image: str = VERSIONED_IMAGE) -> None:
    """Raises ConfigError listing every local path and default image in a spec compiled for a cluster."""
    problems = deployment_problems(spec, default_image=default_image)
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise ConfigError(
            f"the compiled pipeline is tied to this machine: {shown}. Compile with --image REGISTRY/edgeopt:VERSION, "
            "--pipeline-root gs://..., and cloud URIs for the data, serving destination and tracking server"
        )

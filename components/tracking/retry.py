"""Calling MLflow: bounded retries with backoff for transient failures, its HTTP settings, typed errors."""

import contextlib
import logging
import os
import time

import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from edgeopt.components._shared.errors import TrackingError
from edgeopt.components.tracking.config import TRACKING_URI_ENV, TrackingConfig
from edgeopt.components.tracking.store import open_client

# Worth retrying: the server or its database did not answer. Anything else (a rejected value, a missing resource)
# fails the same way on every try.
TRANSIENT_ERROR_CODES = {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "IO_ERROR"}
# log_batch limits (mlflow/utils/validation.py).

_log = logging.getLogger(__name__)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _short(err: BaseException, limit: int = 300) -> str:
    text = f"{type(err).__name__}: {err}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_transient(err: BaseException) -> bool:
    """True for failures another try may cure: no connection, a timeout, a 5xx, a busy database."""
    if isinstance(err, requests.exceptions.RequestException | ConnectionError | TimeoutError):
        return True
    return isinstance(err, MlflowException) and err.error_code in TRANSIENT_ERROR_CODES


@contextlib.contextmanager
def _mlflow_settings(config: TrackingConfig):
    """MLflow reads its HTTP retry and timeout settings from the environment on every request; set ours for the
    duration of one call unless the user set them. Its default (7 retries, exponential backoff) would wait minutes
    per call on a dead server, multiplying our own bounded retries. Progress bars and a printed URL per ended run
    would bury the CLI's table; the job prints its parent run once instead."""
    wanted = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(config.http_request_max_retries),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(config.http_request_timeout_seconds),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    }
    added = [name for name in wanted if name not in os.environ]
    os.environ.update({name: wanted[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


class _Caller:
    """Calls MLflow with a bounded number of tries and a doubling backoff; raises the last error when out of tries."""

    def __init__(self, config: TrackingConfig, say):
        self.config = config
        self.say = say

    def __call__(self, what: str, function, *args, **kwargs):
        delay = self.config.backoff_seconds
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                with _mlflow_settings(self.config):
                    return function(*args, **kwargs)
            except Exception as err:
                if attempt == self.config.max_attempts or not is_transient(err):
                    raise
                self.say(f"MLflow {what} failed ({_short(err, 160)}), try {attempt}/{self.config.max_attempts}")
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # the loop either returns or raises


def _client(tracking_uri: str) -> MlflowClient:
    return open_client(tracking_uri)


def _required_uri(tracking_uri: str | None) -> str:
    uri = tracking_uri or os.environ.get(TRACKING_URI_ENV)
    if not uri:
        raise TrackingError(
            f"no MLflow tracking URI: pass --tracking-uri (e.g. sqlite:///demo-output/mlflow.db or "
            f"http://host:5000) or set {TRACKING_URI_ENV}"
        )
    return uri


@contextlib.contextmanager
def _as_tracking_error(uri: str):
    """For the registry and compare commands: MLflow's failures as one typed error naming the server."""
    try:
        yield
    except TrackingError:
        raise
    except (MlflowException, requests.exceptions.RequestException, OSError) as err:
        raise TrackingError(f"MLflow at {uri} failed: {_short(err)}; check the tracking URI and the server") from err


def _say(message: str, *, verbose: int = 1, problem: bool = False):
    if problem:
        _log.warning(message)
    elif verbose:
        _log.info(message)


def _warn(message: str):
    _say(message, problem=True)

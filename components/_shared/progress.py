"""Progress of a job over recipes, steps and epochs: a live display with an ETA on an interactive terminal, one
plain log line per step elsewhere (a KFP or TFX step's log, CI, a file).

The core reports through `current()`; the CLI decides the display with `job_progress(...)`. Without one, reports
become INFO log lines, so library callers and pipeline steps need nothing.
"""

import contextlib
import logging
import sys
import time

_log = logging.getLogger(__name__)


class PlainProgress:
    """One log line per recipe, step and finished fine-tuning; what non-interactive runs show."""

    def __init__(self):
        self._recipe_started: float | None = None

    def recipe(self, position: int, total: int, name: str, chain: str):
        self._recipe_started = time.perf_counter()
        _log.info("recipe %d/%d %s: %s", position, total, name, chain)

    def step(self, message: str):
        _log.info("  %s", message)

    def epochs(self, total: int, label: str):
        return None  # no per-epoch lines: a fine-tuning step logs once, when it ends

    def recipe_done(self, name: str, outcome: str):
        seconds = time.perf_counter() - self._recipe_started if self._recipe_started else 0.0
        _log.info("  %s: %s (%.1f s)", name, outcome, seconds)

    def close(self):
        return None


class RichProgress(PlainProgress):
    """A rich live display: one bar over the recipes (with its ETA) and one over the current fine-tuning's epochs."""

    def __init__(self, total_recipes: int):
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=True,
        )
        self._recipes = self._progress.add_task("recipes", total=total_recipes)
        self._epochs = None
        self._progress.start()

    def recipe(self, position: int, total: int, name: str, chain: str):
        self._recipe_started = time.perf_counter()
        self._progress.update(self._recipes, description=f"recipe {position}/{total} {name} ({chain})")

    def step(self, message: str):
        self._progress.update(self._recipes, description=message)

    def epochs(self, total: int, label: str):
        if self._epochs is not None:
            self._progress.remove_task(self._epochs)
        self._epochs = self._progress.add_task(f"  {label}", total=total)
        return _EpochCallback(lambda: self._progress.advance(self._epochs))

    def recipe_done(self, name: str, outcome: str):
        # Logged like the plain lines: edgeopt's handler writes to the current sys.stderr, which the live display
        # redirects above its bars, so the line stays instead of tearing them.
        seconds = time.perf_counter() - self._recipe_started if self._recipe_started else 0.0
        _log.info("%s: %s (%.1f s)", name, outcome, seconds)
        self._progress.advance(self._recipes)
        if self._epochs is not None:
            self._progress.remove_task(self._epochs)
            self._epochs = None

    def close(self):
        self._progress.stop()


def _EpochCallback(on_epoch_end):  # noqa: N802 (a class factory: Keras is imported only when fine-tuning)
    from edgeopt.components._shared.keras_bootstrap import keras

    class EpochCallback(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            on_epoch_end()

    return EpochCallback()


_current: PlainProgress = PlainProgress()


def current() -> PlainProgress:
    """The progress display of the running job (plain log lines when no command chose one)."""
    return _current


@contextlib.contextmanager
def job_progress(total_recipes: int, *, interactive: bool | None = None):
    """Makes `current()` a live display for the duration when stderr is a terminal showing INFO, else plain lines."""
    global _current
    if interactive is None:
        interactive = sys.stderr.isatty() and logging.getLogger("edgeopt").isEnabledFor(logging.INFO)
    previous = _current
    _current = RichProgress(total_recipes) if interactive else PlainProgress()
    try:
        yield _current
    finally:
        _current.close()
        _current = previous

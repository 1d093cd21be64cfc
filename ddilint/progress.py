"""A progress bar on stderr for long runs, only where a person is watching.

The bar (rich) appears only when stderr is a terminal, no CI variable is set, `--quiet` is
off, and the run has already taken more than a second; it is removed when the run ends, so
nothing of it stays in scroll-back, pipes or CI logs.
"""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType
from typing import IO, Any

DELAY_SECONDS = float(os.environ.get("DDILINT_PROGRESS_DELAY", "1.0") or 1.0)


def wanted(stream: IO[str] | None = None, quiet: bool = False) -> bool:
    """Whether a progress bar may be drawn on `stream` (default: stderr)."""
    stream = stream if stream is not None else sys.stderr
    if quiet or os.environ.get("CI") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class ProgressBar:
    """`with ProgressBar(enabled) as bar: run(..., progress=bar.update)`."""

    def __init__(self, enabled: bool, delay: float | None = None,
                 stream: IO[str] | None = None) -> None:
        self.enabled = enabled
        self.delay = DELAY_SECONDS if delay is None else delay
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.perf_counter()
        self._progress: Any = None
        self._task: Any = None
        self.shown = False

    def __enter__(self) -> ProgressBar:
        self.started = time.perf_counter()
        return self

    def update(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._progress is None:
            if time.perf_counter() - self.started < self.delay or done >= total:
                return
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            console = Console(file=self.stream, stderr=self.stream is sys.stderr)
            self._progress = Progress(TextColumn("ddilint"), BarColumn(), MofNCompleteColumn(),
                                      TimeRemainingColumn(), console=console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task("files", total=total)
            self.shown = True
        self._progress.update(self._task, completed=done, total=total)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

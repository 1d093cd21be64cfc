"""Per-file limits: a wall-clock time budget and a macro-expansion budget.

A pathological file (a generated table, 20,000 nested parentheses, a macro used inside its
own arguments a thousand times) must not hang a run: `time_budget` interrupts the analysis
of one file after a number of seconds (with `SIGALRM` where the platform has it, and with
cooperative `check` calls between phases everywhere), and the engine turns the interruption
into a DDI905 notice. `ExpansionBudget` caps how many bytes of macro expansions the
frontend parses for one file, and records where nesting went past the IR's depth limit
(deeper code becomes opaque), for a DDI905 notice too.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

# Seconds one file may take (parse and every rule) before it becomes a DDI905 notice.
DEFAULT_FILE_TIMEOUT = 20.0


class BudgetExceeded(BaseException):
    """Raised inside the analysis of a file whose time budget ran out.

    A BaseException, so that a rule's own `except Exception` cannot swallow it.
    """


class Deadline:
    """The moment a file's analysis must stop; `check` raises once it has passed."""

    __slots__ = ("at", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.perf_counter() + seconds if seconds > 0 else float("inf")

    def check(self) -> None:
        """Raise `BudgetExceeded` when the deadline has passed."""
        if time.perf_counter() > self.at:
            raise BudgetExceeded


# The deadlines of the time budgets in force, per thread, innermost last (`checkpoint`).
_ACTIVE: dict[int, list[Deadline]] = {}


def checkpoint() -> None:
    """Raise `BudgetExceeded` when the innermost time budget in force in this thread has run
    out. The engine's long loops call it now and then (`dataflow.solve`): compiled
    (setup.py) the engine runs no bytecode, so the interval timer's handler waits for the
    next Python code a rule runs, and in a thread or on Windows there is no timer."""
    stack = _ACTIVE.get(threading.get_ident())
    if stack:
        stack[-1].check()


def _can_use_alarm() -> bool:
    return hasattr(signal, "setitimer") and (
        threading.current_thread() is threading.main_thread()
    )


@contextmanager
def time_budget(seconds: float) -> Iterator[Deadline]:
    """Run the body with a deadline; raise `BudgetExceeded` in it when time is up.

    In the main thread of a POSIX process an interval timer interrupts Python code wherever
    it is; elsewhere (Windows, an editor's worker thread) the body must call
    `Deadline.check` between steps, and the engine's long loops call `checkpoint`
    everywhere. A budget of 0 or less means no limit.
    """
    deadline = Deadline(seconds)
    if seconds <= 0:
        yield deadline
        return
    ident = threading.get_ident()
    stack = _ACTIVE.setdefault(ident, [])
    stack.append(deadline)
    try:
        if not _can_use_alarm():
            yield deadline
            return
        armed = [True]

        def on_alarm(signum: int, frame: FrameType | None) -> None:
            if armed[0]:
                armed[0] = False
                raise BudgetExceeded

        previous = signal.signal(signal.SIGALRM, on_alarm)
        started = time.perf_counter()
        # An enclosing budget's timer (phase three reading a file's IR again inside a file's
        # own budget): this one stops at whichever end comes first, and gives the enclosing
        # one back the time it has left when it is done. An end of the enclosing budget that
        # this body swallows (`ir_reader` takes any failure as no answer) comes again 10 ms
        # later, once the body's handler is done, and at the enclosing body's next
        # `checkpoint`.
        outer_left, _every = signal.setitimer(signal.ITIMER_REAL, seconds)
        if 0 < outer_left < seconds:
            signal.setitimer(signal.ITIMER_REAL, outer_left)
        try:
            yield deadline
        finally:
            armed[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            if outer_left > 0:
                left = outer_left - (time.perf_counter() - started)
                signal.setitimer(signal.ITIMER_REAL, max(left, 0.01))
    finally:
        stack.pop()
        if not stack:
            del _ACTIVE[ident]


class ExpansionBudget:
    """How many bytes of macro expansions one file may still parse.

    The limit grows with the file (real drivers expand a few times their own size); when
    it runs out the frontend stops expanding, and `exhausted_at` records where, for a
    DDI905 notice.
    """

    __slots__ = ("deep_at", "exhausted_at", "left")

    def __init__(self, file_size: int) -> None:
        self.left = max(256 * 1024, 16 * file_size)
        self.exhausted_at: int | None = None
        self.deep_at: int | None = None

    def too_deep(self, offset: int) -> None:
        """Record the first place where nesting went past the IR's depth limit."""
        if self.deep_at is None or offset < self.deep_at:
            self.deep_at = offset

    def take(self, size: int, offset: int) -> bool:
        """Spend `size` bytes for an expansion used at `offset`; False when over budget."""
        if size > self.left:
            if self.exhausted_at is None:
                self.exhausted_at = offset
            self.left = 0
            return False
        self.left -= size
        return True

"""The execution context of driver code: the answer rules get to "how does this run?".

An `ExecutionContext` says at which IRQLs a function (or one call in it) can run, whether
every known way into it comes from a thread of the system process, and why, as one line
and as trace steps (the entry function with its registration or annotation, each call on
the way, the raise or lock). The project model (`project.py`) computes them; rules ask
through `FileContext.execution_context` and `FileContext.call_context`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ddilint.analyzer.pickling import compact_pickle
from ddilint.findings import TraceStep
from ddilint.knowledge import IRQL_NAMES

PASSIVE, APC, DISPATCH, DIRQL, HIGH = 0, 1, 2, 3, 4


@compact_pickle
@dataclass(frozen=True)
class ExecutionContext:
    """How a function (or a call site) runs.

    system_only: every known way into the function comes from a system-process entry
    (RULES.md: DriverEntry, DriverUnload, AddDevice, system thread start routines, system
    work items); False when any way in is unknown or not in the system process.
    irql_max / irql_min: the highest / lowest IRQL rank at entry (or at the call), in the
    order of `ddilint.knowledge.IRQL_ORDER` (PASSIVE 0, APC 1, DISPATCH 2, DIRQL 3, HIGH 4).
    reason: one line, e.g. "runs at DISPATCH_LEVEL: OnDpc is a DPC (KeInitializeDpc at
    dpc.c:40) -> CacheToken (dpc.c:21)".
    trace: the chain as trace steps: entry and its registration or annotation site, each
    call on the way, the raise or lock.
    """

    system_only: bool
    irql_max: int
    irql_min: int
    reason: str
    trace: tuple[TraceStep, ...]

    @property
    def irql_max_name(self) -> str:
        """The name of `irql_max` (`DISPATCH_LEVEL`)."""
        return irql_name(self.irql_max)

    @property
    def irql_min_name(self) -> str:
        """The name of `irql_min`."""
        return irql_name(self.irql_min)


def irql_name(rank: int) -> str:
    """`PASSIVE_LEVEL` ... `HIGH_LEVEL` for a rank."""
    return IRQL_NAMES.get(rank, str(rank))


UNKNOWN_CONTEXT = ExecutionContext(
    system_only=False,
    irql_max=PASSIVE,
    irql_min=PASSIVE,
    reason="no known caller and no role: taken to run at PASSIVE_LEVEL outside the system "
           "process",
    trace=(),
)

"""Project annotations are knowledge: the driver's own IRQL contracts, as table entries.

This module owns one engine answer: for each call in a file, the `Routine` entry made from
the SAL IRQL annotation of the project function the call reaches
(`_IRQL_requires_max_(PASSIVE_LEVEL)`, `_IRQL_requires_(DISPATCH_LEVEL)`, written on the
definition or on a prototype). Every rule that asks the knowledge table about a callee
(`FileContext.calls()`, `FileContext.routine_of()`) then checks a driver's own
PASSIVE-only helper exactly like a documented routine; DDI301 is the first to use it.

The call is resolved by the project model (`project.py`): `static` functions per file, the
nearest definition where a tree holds several drivers. The entry is made only when every
function the call can reach carries an IRQL annotation with the same bound, and only for
direct calls (a call through a function-pointer field reaches its targets by a guess the
model makes for IRQL propagation, not one a finding should rest on). The entry cites the
annotation: its text, and the file and line where it is written (the definition's when the
annotation is on a prototype).
"""

from __future__ import annotations

from ddilint.analyzer.project import Project
from ddilint.knowledge import IRQL_NAMES, Routine

#: The page that documents the IRQL annotations: the URL of a project entry's citation.
IRQL_ANNOTATIONS_URL = (
    "https://learn.microsoft.com/windows-hardware/drivers/devtest/irql-annotations-for-drivers"
)


def _entry(model: Project, callee: str, targets: list[int]) -> Routine | None:
    contracts = []
    for t in targets:
        annotation = model.nodes[t].annotation
        if annotation is None:
            return None  # one way the call can go has no contract: say nothing
        contracts.append((t, annotation))
    if not contracts or len({(a[0], a[1]) for _t, a in contracts}) != 1:
        return None
    t, (lo, hi, text, loc) = contracts[0]
    node = model.nodes[t]
    path, line = (loc.path, loc.line) if loc is not None else (node.path, node.summary.line)
    where = f"{path}:{line}"
    source = f"{where}#{text}"
    sources = {"max_irql": source, "irql_text": source}
    min_irql = IRQL_NAMES.get(lo) if lo > 0 else None
    if min_irql is not None:
        sources["min_irql"] = source
    return Routine(
        name=callee,
        page=where,
        url=IRQL_ANNOTATIONS_URL,
        max_irql=IRQL_NAMES.get(hi),
        min_irql=min_irql,
        irql_text=text,
        sources=sources,
        project=True,
    )


def project_routines(model: Project, path: str) -> dict[int, Routine]:
    """Call index (into the file's `FileIR.calls`) -> the entry of the annotated project
    function that call reaches, for every such call of the file `path`."""
    fi = model.file_index.get(path)
    if fi is None:
        return {}
    summary = model.files[fi]
    targets: dict[int, list[int]] = {}
    for i in range(len(summary.functions)):
        n = model.node_of[(fi, i)]
        for t, ci in model.nodes[n].callees:
            if ci >= 0:
                targets.setdefault(ci, []).append(t)
    out: dict[int, Routine] = {}
    for ci, ts in targets.items():
        call = summary.calls[ci]
        if call.indirect:
            continue
        entry = _entry(model, call.callee, ts)
        if entry is not None:
            out[ci] = entry
    return out

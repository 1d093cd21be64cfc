"""Project annotations are knowledge: a driver's own `_IRQL_requires_max_` /
`_IRQL_requires_` functions are checked at their call sites like documented routines,
across files, and the finding cites the annotation."""

from __future__ import annotations

from pathlib import Path

from ddilint.analyzer.engine import run
from ddilint.analyzer.project_knowledge import IRQL_ANNOTATIONS_URL
from ddilint.findings import Finding
from ddilint.knowledge import Knowledge
from ddilint.rules.irql_too_high import IrqlTooHigh

HEADER = """\
#pragma once
_IRQL_requires_max_(PASSIVE_LEVEL)
NTSTATUS UtilSyncToDisk(_In_ PVOID Ctx);
"""

UTIL = """\
#include <ntddk.h>
#include "util.h"
NTSTATUS UtilSyncToDisk(PVOID Ctx)
{
    UNREFERENCED_PARAMETER(Ctx);
    return STATUS_SUCCESS;
}
"""

DPC = """\
#include <ntddk.h>
#include "util.h"
static VOID OnTimer(PKDPC Dpc, PVOID Ctx, PVOID A1, PVOID A2)
{
    UNREFERENCED_PARAMETER(Dpc); UNREFERENCED_PARAMETER(A1); UNREFERENCED_PARAMETER(A2);
    (VOID)UtilSyncToDisk(Ctx);
}
VOID Arm(PKDPC Dpc, PVOID Ctx) { KeInitializeDpc(Dpc, OnTimer, Ctx); }
"""


def _run(tmp_path: Path, files: dict[str, str], knowledge: Knowledge) -> list[Finding]:
    paths = []
    for name, text in files.items():
        p = tmp_path / name
        p.write_text(text)
        paths.append(p)
    return [f for f in run(paths, [IrqlTooHigh()], knowledge).findings if not f.is_notice]


def test_annotated_prototype_in_a_header_protects_calls_in_other_files(
        tmp_path: Path, knowledge: Knowledge) -> None:
    found = _run(tmp_path, {"util.h": HEADER, "util.c": UTIL, "dpc.c": DPC}, knowledge)
    assert [(Path(f.location.path).name, f.location.line, f.code) for f in found] == [
        ("dpc.c", 6, "DDI301")]
    f = found[0]
    assert "UtilSyncToDisk is annotated _IRQL_requires_max_(PASSIVE_LEVEL)" in f.message
    assert "OnTimer is a DPC" in f.message
    assert f.citation is not None
    assert f.citation.title == "UtilSyncToDisk"
    assert f.citation.section.startswith("_IRQL_requires_max_(PASSIVE_LEVEL) at ")
    assert f.citation.section.endswith("util.c:3")
    assert f.citation.url == IRQL_ANNOTATIONS_URL


def test_without_the_annotation_nothing_is_claimed(tmp_path: Path,
                                                   knowledge: Knowledge) -> None:
    plain = HEADER.replace("_IRQL_requires_max_(PASSIVE_LEVEL)\n", "")
    assert _run(tmp_path, {"util.h": plain, "util.c": UTIL, "dpc.c": DPC}, knowledge) == []


def test_the_nearest_definitions_contract_applies(tmp_path: Path,
                                                  knowledge: Knowledge) -> None:
    # Two drivers of one tree each define Flush; the call reaches the nearest one only.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = ("#include <ntddk.h>\n_IRQL_requires_max_(DISPATCH_LEVEL)\n"
         "VOID Flush(PVOID C) { UNREFERENCED_PARAMETER(C); }\n") + DPC.replace(
             '#include "util.h"\n', "").replace("UtilSyncToDisk", "Flush")
    b = ("#include <ntddk.h>\n_IRQL_requires_max_(PASSIVE_LEVEL)\n"
         "VOID Flush(PVOID C) { UNREFERENCED_PARAMETER(C); }\n")
    assert _run(tmp_path, {"a/a.c": a, "b/b.c": b}, knowledge) == []


def test_documented_routines_keep_their_facts(tmp_path: Path, knowledge: Knowledge) -> None:
    # The DDI301 finding of a documented routine cites its page, not an annotation.
    src = DPC.replace('#include "util.h"\n', "").replace(
        "(VOID)UtilSyncToDisk(Ctx);", "ZwClose(Ctx);")
    (f,) = _run(tmp_path, {"dpc.c": src}, knowledge)
    assert f.citation is not None
    assert f.citation.label == "ZwClose, Requirements: IRQL"
    assert f.citation.url.endswith("nf-wdm-zwclose#requirements")


def test_two_contracts_for_one_call_are_not_guessed(tmp_path: Path,
                                                    knowledge: Knowledge) -> None:
    # Two definitions equally near, with different contracts: which one runs is unknown.
    y = ("#include <ntddk.h>\n_IRQL_requires_max_(PASSIVE_LEVEL)\n"
         "VOID Flush(PVOID C) { UNREFERENCED_PARAMETER(C); }\n")
    z = y.replace("PASSIVE_LEVEL", "APC_LEVEL")
    x = DPC.replace('#include "util.h"\n', "").replace("UtilSyncToDisk", "Flush")
    assert _run(tmp_path, {"x.c": x, "y.c": y, "z.c": z}, knowledge) == []
    # The same contract in both: the call is checked.
    found = _run(tmp_path, {"x.c": x, "y.c": y, "z.c": y}, knowledge)
    assert [(f.location.line, f.code) for f in found] == [(5, "DDI301")]  # no include line

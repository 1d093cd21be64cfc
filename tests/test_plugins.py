"""Rules are plugins: built-ins come through the entry-point group, and an extra rule
registered on the plugin manager runs like any other."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ddilint.analyzer.engine import analyze_bytes, run
from ddilint.findings import Finding, Severity
from ddilint.hookspecs import hookimpl
from ddilint.knowledge import load_knowledge
from ddilint.plugins import collect_knowledge, collect_rules, plugin_manager
from ddilint.rules.base import FileContext, Pending, ProjectView, Rule


class NoDbgPrint(Rule):
    code = "XDBG001"
    name = "no-dbgprint"
    severity = Severity.WARNING
    summary = "DbgPrint in release code."

    def check_file(self, ctx: FileContext) -> Iterator[Finding]:
        for call in ctx.file.calls:
            if call.callee == "DbgPrint":
                yield ctx.finding(self, call.name_start, "DbgPrint left in driver code")


class NoDbgPrintRaised(Rule):
    """The README's two-step plugin rule: the IRQL at the call is a whole-program answer."""

    code = "XDBG002"
    name = "dbgprint-raised"
    severity = Severity.WARNING
    summary = "DbgPrint called above PASSIVE_LEVEL."

    def check_file(self, ctx: FileContext) -> Iterator[Pending]:
        for call in ctx.file.calls:
            if call.callee == "DbgPrint" and call.function is not None:
                yield ctx.defer(self, call=call)

    def resolve(self, pending: Pending, view: ProjectView) -> Iterator[Finding]:
        cc = view.call_context(pending.call)
        if cc.irql_max > 0:
            f = view.finding_at_call(self, pending.call,
                                     f"DbgPrint at {cc.irql_max_name}: {cc.reason}",
                                     trace=cc.trace)
            if f is not None:
                yield f


class ExtraPlugin:
    @hookimpl
    def ddilint_rules(self) -> Sequence[Rule]:
        return [NoDbgPrint()]

    @hookimpl
    def ddilint_knowledge(self) -> dict[str, dict[str, object]]:
        return {"MyOpenHelper": {"handle_out_param": 0, "max_irql": "PASSIVE_LEVEL"}}


def test_builtin_rules_come_from_entry_points() -> None:
    rules = collect_rules(plugin_manager())
    assert "DDI401" in {r.code for r in rules}


def test_extra_rule_registered_on_the_manager_runs() -> None:
    pm = plugin_manager(extra=[ExtraPlugin()])
    rules = collect_rules(pm)
    assert {"DDI401", "XDBG001"} <= {r.code for r in rules}
    src = b'#include <ntddk.h>\nvoid F(void) {\n  DbgPrint("x");\n  NtClose(h);\n}\n'
    res = analyze_bytes("p.c", src, rules, load_knowledge())
    got = sorted((f.code, f.location.line, f.location.column) for f in res.findings)
    assert got == [("DDI401", 4, 3), ("XDBG001", 3, 3)]


def test_plugin_knowledge_extends_the_table() -> None:
    pm = plugin_manager(extra=[ExtraPlugin()])
    kn = load_knowledge(collect_knowledge(pm))
    r = kn.get("MyOpenHelper")
    assert r is not None and r.handle_out_param == 0 and r.max_irql == "PASSIVE_LEVEL"
    assert kn.get("ZwOpenProcessTokenEx") is not None


def test_a_plugin_rule_can_defer_to_the_project_model(tmp_path: Path) -> None:
    # The DPC is registered in one file, DbgPrint is called by a helper in another.
    (tmp_path / "arm.c").write_text(
        "#include <ntddk.h>\nVOID Log(VOID);\n"
        "VOID OnDpc(PKDPC D, PVOID C, PVOID A, PVOID B) { Log(); }\n"
        "VOID Arm(PKDPC D) { KeInitializeDpc(D, OnDpc, NULL); }\n")
    (tmp_path / "log.c").write_text(
        "#include <ntddk.h>\nVOID Log(VOID) {\n    DbgPrint(\"x\");\n}\n"
        "VOID Quiet(VOID) { DbgPrint(\"y\"); }\n")
    files = sorted(tmp_path.glob("*.c"))
    for jobs in (1, 2):
        found = run(files, [NoDbgPrintRaised()], load_knowledge(), jobs=jobs).findings
        assert [(Path(f.location.path).name, f.location.line, f.location.column)
                for f in found] == [("log.c", 3, 5)], jobs
        (f,) = found
        assert f.message.startswith("DbgPrint at DISPATCH_LEVEL: ")
        assert "OnDpc is a DPC" in f.message
        assert f.anchor == "Log:DbgPrint"
        assert [Path(t.location.path).name for t in f.trace][:1] == ["arm.c"]


def test_entry_points_are_those_importlib_metadata_lists() -> None:
    # The plugins are found by reading the distributions' entry_points.txt directly
    # (importing importlib.metadata was a tenth of a cached run); the answer must be the
    # same, in sys.path order.
    import importlib.metadata

    from ddilint.hookspecs import ENTRY_POINT_GROUP
    from ddilint.plugins import entry_points

    found = entry_points(ENTRY_POINT_GROUP)
    assert found is not None
    listed = [(ep.name, ep.value) for d in importlib.metadata.distributions()
              for ep in d.entry_points if ep.group == ENTRY_POINT_GROUP]
    assert sorted(set(found)) == sorted(set(listed))
    assert ("nt-routine-in-kernel-mode", "ddilint.rules.nt_routine_in_kernel_mode") in found


def test_entry_points_read_a_distribution_folder(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from ddilint.plugins import _load, entry_points

    info = tmp_path / "Acme_Rules-1.0.dist-info"
    info.mkdir()
    (info / "entry_points.txt").write_text(
        "[console_scripts]\nacme = acme:main\n\n"
        "[ddilint.rules]\n# a comment\nacme-dbg = ddilint.hookspecs:DdilintSpec.ddilint_rules\n"
        "acme-two = ddilint.rules.handle_leak [extra]\n\n[other]\nx = y\n")
    (tmp_path / "notes.egg-info").write_text("an old-style PKG-INFO file, not a folder")
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    assert entry_points("ddilint.rules") == [
        ("acme-dbg", "ddilint.hookspecs:DdilintSpec.ddilint_rules"),
        ("acme-two", "ddilint.rules.handle_leak [extra]")]
    from ddilint.hookspecs import DdilintSpec
    from ddilint.rules import handle_leak

    assert _load("ddilint.hookspecs:DdilintSpec.ddilint_rules") is DdilintSpec.ddilint_rules
    assert _load("ddilint.rules.handle_leak [extra]") is handle_leak
    # A zip on the path: only importlib.metadata can read it.
    (tmp_path / "bundle.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    monkeypatch.setattr(sys, "path", [str(tmp_path), str(tmp_path / "bundle.zip")])
    assert entry_points("ddilint.rules") is None


def test_plugins_load_through_importlib_metadata_when_the_path_needs_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zipped = tmp_path / "bundle.zip"
    zipped.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip archive
    monkeypatch.setattr(sys, "path", [*sys.path, str(zipped)])
    rules = collect_rules(plugin_manager())
    assert "DDI401" in {r.code for r in rules}

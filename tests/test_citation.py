"""Citations: a rule and each finding name the page and section of the documented
requirement, with its learn.microsoft.com URL; `ddilint knowledge show` names the source
of every fact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest

from ddilint.analyzer.engine import analyze_bytes
from ddilint.cli import main
from ddilint.findings import Citation, Finding
from ddilint.knowledge import Knowledge
from ddilint.knowledge.describe import describe_routine, suggestions
from ddilint.rules.base import DOCS_BASE, FileContext, Rule, cite_fact

PAGE = "https://learn.microsoft.com/windows-hardware/drivers/ddi/"


class HandleAttributesRule(Rule):
    """A rule about the handle attributes of handle-creating routines (for the tests)."""

    code = "DDI991"
    name = "test-handle-attributes"
    routine = "ZwOpenProcessTokenEx"
    doc_section = "Parameters: HandleAttributes"
    facts: ClassVar[tuple[str, ...]] = ("attributes_param", "object_attributes_param")

    def check_file(self, ctx: FileContext) -> list[Finding]:
        return [ctx.finding(self, call.name_start, f"call of {call.callee}",
                            routine=call.callee)
                for call, r in ctx.calls()
                if r.attributes_param is not None or r.object_attributes_param is not None]


class IrqlRule(Rule):
    code = "DDI992"
    name = "test-irql"
    routine = "ZwOpenProcessTokenEx"
    doc_section = "Requirements"
    facts: ClassVar[tuple[str, ...]] = ("max_irql",)


def test_rule_citation_names_page_and_section(knowledge: Knowledge) -> None:
    cite = HandleAttributesRule().citation(knowledge)
    assert cite == Citation(
        "ZwOpenProcessTokenEx", "Parameters: HandleAttributes",
        PAGE + "ntifs/nf-ntifs-zwopenprocesstokenex#parameters")
    assert cite.label == "ZwOpenProcessTokenEx, Parameters: HandleAttributes"
    assert str(cite) == f"{cite.label} <{cite.url}>"
    assert HandleAttributesRule().help_uri(knowledge) == cite.url


def test_citation_per_routine_follows_the_fact(knowledge: Knowledge) -> None:
    rule = HandleAttributesRule()
    # ZwCreateFile has no HandleAttributes; its OBJECT_ATTRIBUTES parameter is cited.
    cite = rule.citation(knowledge, "ZwCreateFile")
    assert cite.label == "ZwCreateFile, Parameters: ObjectAttributes"
    assert cite.url == PAGE + "wdm/nf-wdm-zwcreatefile#parameters"
    irql = IrqlRule()
    assert irql.citation(knowledge, "ExAllocatePool2").label == (
        "ExAllocatePool2, Requirements: IRQL")
    assert irql.citation(knowledge, "ExAllocatePool2").url.endswith("#requirements")
    # "See Remarks section." read from the Remarks.
    assert irql.citation(knowledge, "KeWaitForSingleObject").label == (
        "KeWaitForSingleObject, Remarks")
    # Read from the Remarks by hand (overlay entry with `source = "Remarks"`).
    assert irql.citation(knowledge, "PoCallDriver").label == "PoCallDriver, Remarks"
    # A routine known only from the front-matter table: its page still is cited.
    wdf = irql.citation(knowledge, "WdfDeviceEnqueueRequest")
    assert wdf.url == PAGE + "wdfdevice/nf-wdfdevice-wdfdeviceenqueuerequest#requirements"


def test_citation_without_knowledge_or_page() -> None:
    rule = HandleAttributesRule()
    assert rule.citation(None) == Citation(
        "ZwOpenProcessTokenEx", "Parameters: HandleAttributes", DOCS_BASE)
    assert cite_fact(None, "MyHelper", ("max_irql",)).url == DOCS_BASE


def test_finding_cites_the_routine_it_is_about() -> None:
    src = (b"#include <ntddk.h>\n"
           b"NTSTATUS F(POBJECT_ATTRIBUTES oa, HANDLE *h, HANDLE *t) {\n"
           b"    ZwOpenKey(h, KEY_READ, oa);\n"
           b"    return ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY, 0, t);\n"
           b"}\n")
    from ddilint.knowledge import load_knowledge

    res = analyze_bytes("t.c", src, [HandleAttributesRule()], load_knowledge())
    cites = {f.location.line: f.citation for f in res.findings}
    assert cites[3] is not None and cites[3].label == "ZwOpenKey, Parameters: ObjectAttributes"
    assert cites[4] is not None and cites[4].label == (
        "ZwOpenProcessTokenEx, Parameters: HandleAttributes")


def test_finding_without_routine_has_no_citation(knowledge: Knowledge) -> None:
    class Plain(Rule):
        code = "DDI993"
        name = "plain"

        def check_file(self, ctx: FileContext) -> list[Finding]:
            return [ctx.finding(self, 0, "x")]

    res = analyze_bytes("t.c", b"#include <ntddk.h>\nint x;\n", [Plain()], knowledge)
    assert [f.citation for f in res.findings] == [None]


def test_json_report_carries_the_citation(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.c").write_text("#include <ntddk.h>\nVOID F(HANDLE h) { NtClose(h); }\n")
    assert main(["check", "--format", "json", str(tmp_path)]) == 1
    (f,) = json.loads(capsys.readouterr().out)
    assert f["citation"] == {"title": "ZwClose", "section": "Remarks",
                             "url": PAGE + "wdm/nf-wdm-zwclose#remarks"}


def test_explain_cites_page_and_section(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "DDI401"]) == 0
    out = capsys.readouterr().out
    assert "Documentation: ZwOpenProcessTokenEx, Remarks\n" in out
    assert PAGE + "ntifs/nf-ntifs-zwopenprocesstokenex#remarks" in out


def test_describe_lists_the_rules_a_routine_falls_under(knowledge: Knowledge) -> None:
    text = HandleAttributesRule().describe(knowledge)
    assert "Requirement" not in text  # the test rule states none
    assert "Documentation: ZwOpenProcessTokenEx, Parameters: HandleAttributes" in text
    names = HandleAttributesRule().applies_to(knowledge)
    assert {"ZwOpenProcessTokenEx", "ZwCreateFile", "ZwOpenKey"} <= set(names)
    assert f"Applies to {len(names)} documented routines" in text


def test_show_every_fact_with_its_source(knowledge: Knowledge) -> None:
    r = knowledge.get("ZwOpenProcessTokenEx")
    assert r is not None
    lines = describe_routine(r, [("DDI991", HandleAttributesRule.facts), ("DDI992", ("x",))])
    page = "ntifs/nf-ntifs-zwopenprocesstokenex.md"
    text = "\n".join(lines)
    assert lines[0] == "ZwOpenProcessTokenEx (ntifs.h)"
    assert f'max IRQL: PASSIVE_LEVEL (the page says "PASSIVE_LEVEL")    [{page}#req.irql]' in text
    assert f"handle attributes parameter: HandleAttributes (argument 3)    " \
           f"[{page}#Parameters: HandleAttributes]" in text
    assert f"handle out-parameter: TokenHandle (argument 4)    " \
           f"[{page}#Parameters: TokenHandle]" in text
    assert f"release with: ZwClose    [{page}#Remarks]" in text
    assert f"returns an NTSTATUS: yes    [{page}#Returns]" in text
    assert "DDI compliance rules: HwStorPortProhibitedDDIs, PowerIrpDDis" in text
    assert "Zw/Nt twin: NtOpenProcessTokenEx" in text
    assert "    3. HandleAttributes [in]" in lines
    assert "rules that use these facts: DDI991" in text


def test_show_unknown_irql_and_overlay_facts(knowledge: Knowledge) -> None:
    r = knowledge.get("RtlInitUnicodeString")
    assert r is not None
    assert any(line.startswith("  max IRQL: unknown (the page says") for line in
               describe_routine(r))
    spin = knowledge.get("KeAcquireSpinLock")
    assert spin is not None
    assert ("  changes the IRQL: raise, to DISPATCH_LEVEL, old IRQL saved in OldIrql"
            "    [overlay.toml]") in describe_routine(spin)


def test_show_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["knowledge", "show", "KeInsertQueueDpc"]) == 0
    out = capsys.readouterr().out
    assert 'max IRQL: HIGH_LEVEL (the page says "Any level")' in out
    assert main(["knowledge", "show", "zwclose"]) == 1
    assert "did you mean: ZwClose" in capsys.readouterr().err


def test_suggestions(knowledge: Knowledge) -> None:
    assert suggestions(knowledge, "ZwOpenProcesTokenEx")[0] == "ZwOpenProcessTokenEx"
    assert suggestions(knowledge, "Qqqqqqqq") == []


def test_project_entry_cites_the_annotation(knowledge: Knowledge) -> None:
    from dataclasses import replace

    from ddilint.knowledge import Routine

    where = "drv/util.c:12#_IRQL_requires_max_(PASSIVE_LEVEL)"
    helper = Routine(name="UtilFlush", page="drv/util.c:12", url=PAGE, max_irql="PASSIVE_LEVEL",
                     sources={"max_irql": where}, project=True)
    table = replace(knowledge, routines={**knowledge.routines, "UtilFlush": helper})
    cite = IrqlRule().citation(table, "UtilFlush")
    assert cite.label == "UtilFlush, _IRQL_requires_max_(PASSIVE_LEVEL) at drv/util.c:12"
    assert cite.url == PAGE


def test_rules_with_facts_cite_the_routine_at_the_finding(knowledge: Knowledge) -> None:
    # No rule passes routine= here: the engine cites the routine called at the primary
    # location for rules that declare the facts they enforce.
    from ddilint.plugins import collect_rules, plugin_manager

    rules = [r for r in collect_rules(plugin_manager()) if r.code in ("DDI101", "DDI501")]
    src = (b"#include <ntddk.h>\n"
           b"NTSTATUS F(PUNICODE_STRING name)\n{\n    OBJECT_ATTRIBUTES oa;\n    HANDLE key;\n"
           b"    InitializeObjectAttributes(&oa, name, OBJ_CASE_INSENSITIVE, NULL, NULL);\n"
           b"    ZwOpenKey(&key, KEY_READ, &oa);\n    return STATUS_SUCCESS;\n}\n")
    res = analyze_bytes("t.c", src, rules, knowledge)
    cites = {f.code: f.citation for f in res.findings if f.location.line == 7}
    assert cites["DDI101"] is not None
    assert cites["DDI101"].label == "ZwOpenKey, Parameters: ObjectAttributes"
    assert cites["DDI501"] is not None and cites["DDI501"].label == "ZwOpenKey, Return value"

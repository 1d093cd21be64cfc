"""SARIF validated against the official 2.1.0 schema, fingerprints stable across unrelated
edits, code flows from trace steps, and GitHub workflow-command annotations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ddilint.cli import main
from ddilint.findings import Finding, Location, Severity, TraceStep
from ddilint.knowledge import load_knowledge
from ddilint.plugins import collect_rules, plugin_manager
from ddilint.report.github import format_github
from ddilint.report.sarif import FINGERPRINT_KEY, artifact_uri, to_sarif
from tests.conftest import ROOT

SCHEMA = ROOT.parent / "shared" / "sarif" / "sarif-schema-2.1.0.json"
if not SCHEMA.exists():
    SCHEMA = Path("/work/shared/sarif/sarif-schema-2.1.0.json")

DRIVER = """#include <ntddk.h>
VOID Cleanup(HANDLE h, HANDLE k)
{
    NtClose(h);
    NtClose(k);
}
"""


def _validate(log: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.validate(log, schema, cls=jsonschema.Draft4Validator)


def _sarif(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["check", "--format", "sarif", str(path)]) == 1
    log: dict[str, Any] = json.loads(capsys.readouterr().out)
    return log


def test_sarif_validates_and_has_rule_metadata(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "drv.c").write_text(DRIVER)
    log = _sarif(tmp_path, capsys)
    _validate(log)
    run = log["runs"][0]
    rule = next(r for r in run["tool"]["driver"]["rules"] if r["id"] == "DDI401")
    assert "/nf-ntifs-zwopenprocesstokenex" in rule["helpUri"]
    assert rule["defaultConfiguration"]["level"] == "warning"
    assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
    assert "Why it matters" in rule["help"]["text"]
    res = run["results"]
    assert [(r["ruleId"], r["level"], r["locations"][0]["physicalLocation"]["region"]["startLine"])
            for r in res] == [("DDI401", "warning", 4), ("DDI401", "warning", 5)]
    assert run["tool"]["driver"]["rules"][res[0]["ruleIndex"]]["id"] == "DDI401"
    assert "nf-wdm-zwclose" in res[0]["properties"]["documentation"]["url"]
    fps = [r["partialFingerprints"][FINGERPRINT_KEY] for r in res]
    assert len(set(fps)) == 2
    res[0]["level"] = "fatal"  # the schema really is enforced
    with pytest.raises(jsonschema.ValidationError):
        _validate(log)


def test_fingerprints_survive_unrelated_edits(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "drv.c").write_text(DRIVER)
    before = [r["partialFingerprints"][FINGERPRINT_KEY]
              for r in _sarif(tmp_path, capsys)["runs"][0]["results"]]
    edited = "// Copyright notice\n#include <ntddk.h>\n\nstatic ULONG Count;\n" + DRIVER.replace(
        "#include <ntddk.h>\n", "").replace("    NtClose(h);", "        NtClose(h);  ")
    (tmp_path / "drv.c").write_text(edited)
    results = _sarif(tmp_path, capsys)["runs"][0]["results"]
    assert [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in results] == [
        7, 8]
    assert [r["partialFingerprints"][FINGERPRINT_KEY] for r in results] == before


def test_findings_on_one_long_line_hash_it_once_each(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A generated line of 2,000 `NtClose(h);` has 2,000 findings of one rule and anchor.
    # Each normalised and hashed the whole line again: the time grew as the square of the
    # line (a 380 KB line took 9 minutes).
    import ddilint.fingerprint as fp

    line = "NtClose(h); " * 2000
    findings = [Finding("DDI401", "nt-routine-in-kernel-mode", Severity.WARNING, "m",
                        Location("drv.c", 3, 1 + 12 * i), anchor="NtClose")
                for i in range(2000)]
    findings.append(Finding("DDI202", "double-close", Severity.ERROR, "m",
                            Location("drv.c", 3, 1), anchor="h"))
    calls: list[str] = []
    real = fp.normalise
    monkeypatch.setattr(fp, "normalise", lambda text: calls.append(text) or real(text))
    prints = fp.fingerprints(findings, lambda _path, _line: line)
    assert len(calls) == 2  # once for each (rule, anchor) on the line
    first = fp.base_hash(findings[0], line)
    assert prints[:3] == [f"{first}:1", f"{first}:2", f"{first}:3"]
    assert prints[-1] == f"{fp.base_hash(findings[-1], line)}:1"


def test_a_report_resolves_each_path_once(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import ddilint.report.sarif as sarif

    asked: list[str] = []
    real = sarif.artifact_uri
    monkeypatch.setattr(sarif, "artifact_uri",
                        lambda path, base: asked.append(path) or real(path, base))
    paths = [(tmp_path / n).as_posix() for n in ("a.c", "b.c")]
    findings = [Finding("DDI401", "nt-routine-in-kernel-mode", Severity.WARNING, "m",
                        Location(paths[i % 2], i + 1, 1),
                        trace=(TraceStep(Location(paths[0], 1, 1), "here"),))
                for i in range(40)]
    log = to_sarif(findings, [f"x:{i}" for i in range(40)], [], base=tmp_path)
    assert sorted(asked) == paths
    assert [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in log["runs"][0]["results"][:2]] == ["a.c", "b.c"]


def test_code_flows_from_a_real_trace(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_precommit import DPC, HELPER

    (tmp_path / "dpc.c").write_text(DPC)
    (tmp_path / "helper.c").write_text(HELPER)
    log = _sarif(tmp_path, capsys)
    _validate(log)
    [res] = log["runs"][0]["results"]
    assert res["ruleId"] == "DDI301"
    steps = res["codeFlows"][0]["threadFlows"][0]["locations"]
    got = [(Path(s["location"]["physicalLocation"]["artifactLocation"]["uri"]).name,
            s["location"]["physicalLocation"]["region"]["startLine"],
            s["location"]["message"]["text"]) for s in steps]
    assert got[0][:2] == ("dpc.c", 14) and "OnDpc is a DPC" in got[0][2]
    assert got[1] == ("dpc.c", 9, "calls CacheToken")


@pytest.mark.parametrize(("name", "uri"), [
    ("drv.c", "drv.c"),
    ("my driver/a#1.c", "my%20driver/a%231.c"),  # a space, and a '#' that starts a fragment
    ("C:x.c", "C%3Ax.c"),  # not a scheme
    ("pilote-\u00e9.c", "pilote-%C3%A9.c"),
    ("drv-\udcff.c", "drv-%FF.c"),  # a name that is not UTF-8 (a byte os.walk could not decode)
])
def test_artifact_uris_are_uri_references(tmp_path: Path, name: str, uri: str) -> None:
    rules = collect_rules(plugin_manager())
    f = Finding("DDI401", "nt-routine-in-kernel-mode", Severity.WARNING, "NtClose",
                Location((tmp_path / name).as_posix(), 1, 1))
    log = to_sarif([f], ["abc:1"], rules, load_knowledge(), base=tmp_path)
    _validate(log)
    got = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert got == {"uri": uri, "uriBaseId": "%SRCROOT%"}
    outside = artifact_uri((tmp_path / name).as_posix(), tmp_path / "elsewhere")
    assert outside.startswith("file:///") and outside.endswith("/" + uri.rsplit("/", 1)[-1])


def test_code_flows_from_trace_validate(tmp_path: Path) -> None:
    src = tmp_path / "leak.c"
    src.write_text("x\ny\nz\n")
    p = src.as_posix()
    f = Finding("DDI201", "handle-leak", Severity.ERROR, "handle opened here is not closed",
                Location(p, 2, 5, 2, 9),
                trace=(TraceStep(Location(p, 1, 1), "opened"),
                       TraceStep(Location(p, 3, 1), "returns without ZwClose")),
                related=(TraceStep(Location(p, 1, 1), "the open"),))
    rules = collect_rules(plugin_manager())
    log = to_sarif([f], ["abc:1"], rules, load_knowledge(), base=tmp_path)
    _validate(log)
    res = log["runs"][0]["results"][0]
    steps = res["codeFlows"][0]["threadFlows"][0]["locations"]
    assert [(s["location"]["physicalLocation"]["region"]["startLine"],
             s["location"]["message"]["text"]) for s in steps] == [
        (1, "opened"), (3, "returns without ZwClose")]
    assert res["relatedLocations"][0]["message"]["text"] == "the open"
    assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "leak.c"
    # a notice-less rule id that no loaded rule has still gets a descriptor
    ids = [r["id"] for r in log["runs"][0]["tool"]["driver"]["rules"]]
    assert "DDI201" in ids


def test_notices_are_tool_notifications(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "drv.c").write_text(DRIVER)
    (tmp_path / "blob.c").write_bytes(bytes(range(256)) * 40)
    log = _sarif(tmp_path, capsys)
    _validate(log)
    run = log["runs"][0]
    assert [r["ruleId"] for r in run["results"]] == ["DDI401", "DDI401"]
    [note] = run["invocations"][0]["toolExecutionNotifications"]
    assert note["descriptor"]["id"] == "DDI902" and note["level"] == "note"
    assert note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("/blob.c")


def test_github_annotations(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "drv.c").write_text(DRIVER)
    monkeypatch.chdir(tmp_path)  # the checkout: paths are relative to it
    assert main(["check", "--format", "github", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("::warning file=src/drv.c,line=4,col=5,"
                               "title=DDI401 nt-routine-in-kernel-mode::NtClose called")
    f = Finding("DDI906", "internal-error", Severity.NOTE, "50% done\nthen: failed",
                Location("a,b:c.c", 1, 1))
    assert format_github([f]) == ("::notice file=a%2Cb%3Ac.c,line=1,col=1,"
                                  "title=DDI906 internal-error::50%25 done%0Athen: failed\n")

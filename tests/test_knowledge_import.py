"""The documentation importer and the shipped knowledge table it generates."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

from ddilint.knowledge import importer  # noqa: E402
from ddilint.knowledge.importer import (  # noqa: E402
    DEFAULT_OUTPUT,
    build_table,
    normalize_irql,
    page_facts,
    parse_page,
    read_tsv,
    render,
    strip_html,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"  # /work/main -> /work/shared


@pytest.fixture(scope="module")
def table() -> dict[str, Any]:
    return build_table(SHARED)


@pytest.fixture(scope="module")
def routines(table: dict[str, Any]) -> dict[str, Any]:
    got = table["routines"]
    assert isinstance(got, dict)
    return got


def test_shipped_table_is_what_the_import_produces(table: dict[str, Any]) -> None:
    shipped = DEFAULT_OUTPUT.read_text(encoding="utf-8")
    assert render(table) == shipped, (
        "ddilint/knowledge/routines.json is stale: run "
        "python -m ddilint.knowledge.importer --shared ../shared"
    )


def test_import_is_deterministic(table: dict[str, Any]) -> None:
    assert render(build_table(SHARED)) == render(table)


def test_check_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert importer.main(["--shared", str(SHARED), "--check", "-o", str(DEFAULT_OUTPUT)]) == 0
    stale = json.loads(DEFAULT_OUTPUT.read_text(encoding="utf-8"))
    stale["routines"]["ZwOpenKey"]["max_irql"] = "DISPATCH_LEVEL"
    del stale["routines"]["ZwClose"]
    path = tmp_path / "routines.json"
    path.write_text(render(stale), encoding="utf-8")
    capsys.readouterr()
    assert importer.main(["--shared", str(SHARED), "--check", "-o", str(path)]) == 1
    message = capsys.readouterr().err
    assert "ZwOpenKey" in message and "ZwClose" in message
    assert importer.main(["--shared", str(SHARED), "--check", "-o", str(tmp_path / "no")]) == 1


def test_write_then_check(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "routines.json"
    assert importer.main(["--shared", str(SHARED), "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == DEFAULT_OUTPUT.read_text(encoding="utf-8")
    assert importer.main(["--shared", str(SHARED), "-o", str(out), "--check"]) == 0


def test_generator_block(table: dict[str, Any]) -> None:
    generator = table["generator"]
    assert generator["command"].startswith("ddilint knowledge import")
    inputs = generator["inputs"]
    assert set(inputs) == {
        "ddi-docs/nf-*.md",
        "ddi-docs/MANIFEST.tsv",
        "seed/ZwOpenProcessTokenEx.md",
        "ddi-facts/frontmatter.tsv",
    }
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in inputs.values())
    assert all(not Path(k).is_absolute() for k in inputs)


def test_input_hashes_do_not_depend_on_location(tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / "shared"
    (copy / "ddi-docs").mkdir(parents=True)
    for page in (SHARED / "ddi-docs").glob("nf-*.md"):
        shutil.copyfile(page, copy / "ddi-docs" / page.name)
    shutil.copyfile(SHARED / "ddi-docs" / "MANIFEST.tsv", copy / "ddi-docs" / "MANIFEST.tsv")
    shutil.copytree(SHARED / "seed", copy / "seed")
    shutil.copytree(SHARED / "ddi-facts", copy / "ddi-facts")
    assert importer.input_hashes(copy) == importer.input_hashes(SHARED)


def test_zw_open_process_token_ex(routines: dict[str, Any]) -> None:
    r = routines["ZwOpenProcessTokenEx"]
    assert r["max_irql"] == "PASSIVE_LEVEL"
    assert r["min_irql"] is None
    assert [p["name"] for p in r["params"]] == [
        "ProcessHandle",
        "DesiredAccess",
        "HandleAttributes",
        "TokenHandle",
    ]
    assert [p["direction"] for p in r["params"]] == ["in", "in", "in", "out"]
    assert r["handle_out_param"] == 3
    assert r["attributes_param"] == 2
    assert r["access_param"] == 1
    assert r["process_handle_param"] == 0
    assert r["object_attributes_param"] is None
    assert r["release"] == ["ZwClose"]
    assert r["returns_status"] is True
    assert "PowerIrpDDis" in r["compliance"]
    assert "HwStorPortProhibitedDDIs" in r["compliance"]
    assert r["compliance"] == sorted(r["compliance"])
    assert r["twin"] == "NtOpenProcessTokenEx"
    assert r["header"] == "ntifs.h"
    assert r["page"] == "ntifs/nf-ntifs-zwopenprocesstokenex.md"
    assert r["url"] == (
        "https://learn.microsoft.com/windows-hardware/drivers/ddi/ntifs/nf-ntifs-zwopenprocesstokenex"
    )
    page = r["page"]
    assert r["sources"]["max_irql"] == f"{page}#req.irql"
    assert r["sources"]["handle_out_param"] == f"{page}#Parameters: TokenHandle"
    assert r["sources"]["attributes_param"] == f"{page}#Parameters: HandleAttributes"
    assert r["sources"]["release"] == f"{page}#Remarks"
    assert r["sources"]["compliance"] == f"{page}#req.ddi-compliance"
    nt = routines["NtOpenProcessTokenEx"]
    assert nt["twin"] == "ZwOpenProcessTokenEx"
    assert nt["handle_out_param"] == 3 and nt["attributes_param"] == 2
    assert nt["max_irql"] == "PASSIVE_LEVEL"


def test_zw_open_thread_token_ex(routines: dict[str, Any]) -> None:
    r = routines["ZwOpenThreadTokenEx"]
    assert r["attributes_param"] == 3
    assert r["params"][r["attributes_param"]]["name"] == "HandleAttributes"
    assert r["params"][r["handle_out_param"]]["name"] == "TokenHandle"
    assert r["process_handle_param"] is None


@pytest.mark.parametrize("name", ["ZwOpenKey", "ZwCreateFile"])
def test_object_attributes_routines(routines: dict[str, Any], name: str) -> None:
    r = routines[name]
    assert r["object_attributes_param"] == 2
    assert r["handle_out_param"] == 0
    assert r["attributes_param"] is None
    assert r["access_param"] == 1
    assert r["max_irql"] == "PASSIVE_LEVEL"
    assert r["returns_status"] is True
    assert "ZwClose" in r["release"]


def test_other_handle_creators(routines: dict[str, Any]) -> None:
    assert routines["ZwOpenProcess"]["handle_out_param"] == 0
    assert routines["ZwOpenProcess"]["process_handle_param"] is None  # it is the [out] one
    assert routines["ZwCreateSection"]["params"][0]["name"] == "SectionHandle"
    assert routines["ZwCreateSection"]["handle_out_param"] == 0
    assert routines["PsCreateSystemThread"]["release"] == ["ZwClose"]
    assert routines["ObReferenceObjectByHandle"]["handle_out_param"] is None
    assert routines["ObReferenceObjectByHandle"]["release"] == ["ObDereferenceObject"]
    # A handle-closing routine is never the release of something that gives no handle.
    assert routines["ZwDeleteKey"]["release"] == []
    assert routines["ZwClose"]["release"] == []


def test_spin_lock_irql(routines: dict[str, Any]) -> None:
    assert routines["KeAcquireSpinLock"]["max_irql"] == "DISPATCH_LEVEL"
    assert routines["KeReleaseSpinLock"]["max_irql"] == "DISPATCH_LEVEL"
    # "See Remarks section." resolved from the page's Remarks: ">= DISPATCH_LEVEL".
    dpc = routines["KeAcquireSpinLockAtDpcLevel"]
    assert dpc["max_irql"] is None and dpc["min_irql"] == "DISPATCH_LEVEL"
    assert dpc["sources"]["min_irql"].endswith("#Remarks")


def test_irql_coverage(routines: dict[str, Any]) -> None:
    with_max = [n for n, r in routines.items() if r["max_irql"] is not None]
    # 3,530 distinct names state a level; "Any level" (callable at any IRQL, so the
    # documented maximum is HIGH_LEVEL) adds about 500 more. Conditional values ("Any level
    # as long as ...") and bare "See Remarks" without a full page stay unknown.
    assert len(with_max) >= 4000
    assert routines["KeInsertQueueDpc"]["max_irql"] == "HIGH_LEVEL"
    assert routines["KeInsertQueueDpc"]["irql_text"] == "Any level"
    for row in read_tsv(SHARED / "ddi-facts" / "frontmatter.tsv"):
        if normalize_irql(row.irql).max_irql is not None:
            assert routines[row.api_name]["max_irql"] is not None, row.api_name
    assert all(
        r["max_irql"] in (None, *importer.LEVELS) and r["min_irql"] in (None, *importer.LEVELS)
        for r in routines.values()
    )


def test_every_compliance_row_is_in_the_table(routines: dict[str, Any]) -> None:
    checked = 0
    for row in read_tsv(SHARED / "ddi-facts" / "frontmatter.tsv"):
        rules = {c.strip() for c in row.compliance.split(",")}
        for rule in ("PowerIrpDDis", "HwStorPortProhibitedDDIs"):
            if rule in rules:
                checked += 1
                assert row.api_name in routines, row.api_name
                assert rule in routines[row.api_name]["compliance"], (row.api_name, rule)
    assert checked == 228 + 418


def test_every_fact_has_a_source(routines: dict[str, Any]) -> None:
    facts = (
        "max_irql",
        "min_irql",
        "irql_text",
        "handle_out_param",
        "attributes_param",
        "object_attributes_param",
        "access_param",
        "process_handle_param",
        "returns_status",
        "twin",
    )
    for name, r in routines.items():
        for fact in facts:
            if r[fact] is not None:
                assert "#" in r["sources"][fact], (name, fact)
        for fact in ("release", "compliance", "params"):
            if r[fact]:
                assert r["sources"][fact].startswith(r["page"] + "#"), (name, fact)
        index_facts = facts[3:8]
        for fact in index_facts:
            if r[fact] is not None:
                assert 0 <= r[fact] < len(r["params"]), (name, fact)


def test_tsv_only_routines(routines: dict[str, Any]) -> None:
    r = routines["WdfDeviceEnqueueRequest"]
    assert r["max_irql"] == "DISPATCH_LEVEL"
    assert r["params"] == [] and r["release"] == [] and r["returns_status"] is None
    assert r["handle_out_param"] is None
    assert r["page"] == "wdfdevice/nf-wdfdevice-wdfdeviceenqueuerequest.md"
    assert r["sources"]["max_irql"] == f"{r['page']}#req.irql"


def test_no_prose_copied(table: dict[str, Any]) -> None:
    text = render(table)
    assert "must eventually be released" not in text
    assert "caller-allocated variable" not in text
    assert max(len(s) for s in _strings(table)) < 200


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@pytest.mark.parametrize(
    ("spelling", "max_irql", "min_irql"),
    [
        ("PASSIVE_LEVEL", "PASSIVE_LEVEL", None),
        ("<= APC_LEVEL", "APC_LEVEL", None),
        ("<=DISPATCH_LEVEL", "DISPATCH_LEVEL", None),
        ("IRQL <= DISPATCH_LEVEL", "DISPATCH_LEVEL", None),
        ("< DISPATCH_LEVEL", "APC_LEVEL", None),
        ("<DISPATCH_LEVEL", "APC_LEVEL", None),
        ("< = DISPATCH_LEVEL", "DISPATCH_LEVEL", None),
        ("<= DISPATCH_ LEVEL", "DISPATCH_LEVEL", None),
        ("<=(APC_LEVEL)", "APC_LEVEL", None),
        ("= PASSIVE_LEVEL", "PASSIVE_LEVEL", "PASSIVE_LEVEL"),
        ("= DISPATCH_LEVEL", "DISPATCH_LEVEL", "DISPATCH_LEVEL"),
        ("IRQL >= DISPATCH_LEVEL", None, "DISPATCH_LEVEL"),
        ("Greater than or equal to DISPATCH_LEVEL", None, "DISPATCH_LEVEL"),
        ("Greater than DISPATCH_LEVEL", None, "DIRQL"),
        ("Any level", "HIGH_LEVEL", None),
        ("Any IRQL.", "HIGH_LEVEL", None),
        ("Any level (see Remarks section)", "HIGH_LEVEL", None),
        ("Any level as long as target memory is resident", None, None),
        ("Any IRQL if BitMapHeader is memory-resident; <= APC_LEVEL if pageable", None, None),
        ("Not applicable", None, None),
        ("DIRQL", "DIRQL", None),
        ("<= DIRQL (see Comments section)", "DIRQL", None),
        ("HIGH_LEVEL", "HIGH_LEVEL", None),
        ("PASSIVE_LEVEL (see Remarks section)", "PASSIVE_LEVEL", None),
        ("Passive level.", "PASSIVE_LEVEL", None),
        ("DPC_LEVEL", "DISPATCH_LEVEL", None),
        ("_IRQL_requires_max_(APC_LEVEL)", "APC_LEVEL", None),
        ("PASSIVE_LEVEL or DISPATCH_LEVEL.", "DISPATCH_LEVEL", None),
        ("<= APC_LEVEL or <= DISPATCH_LEVEL (See Remarks section)", "DISPATCH_LEVEL", None),
        ("See Remarks section.", None, None),
        ("Wait is TRUE, PASSIVE_LEVEL", None, None),
        ("Any level if a GUID is passed in, otherwise PASSIVE_LEVEL.", None, None),
        ("_Must_inspect_result_", None, None),
        ("<b>&lt;= APC_LEVEL</b>", "APC_LEVEL", None),
        ("<b><= APC_LEVEL</b>", "APC_LEVEL", None),
        ("", None, None),
    ],
)
def test_normalize_irql(spelling: str, max_irql: str | None, min_irql: str | None) -> None:
    spec = normalize_irql(spelling)
    assert (spec.max_irql, spec.min_irql) == (max_irql, min_irql)


def test_normalize_irql_kinds() -> None:
    assert normalize_irql("See Remarks section.").kind == "see-remarks"
    assert normalize_irql("Any level").kind == "any"
    assert normalize_irql("Not applicable").kind == "not-applicable"
    assert normalize_irql("Any level as long as target memory is resident").kind == "conditional"
    assert normalize_irql("").kind == "empty"
    assert normalize_irql("Wait is TRUE, PASSIVE_LEVEL").kind == "conditional"
    assert normalize_irql("AcxObjectBagRetrieveBlob").kind == "unrecognised"


def test_every_tsv_spelling_is_classified() -> None:
    rows = read_tsv(SHARED / "ddi-facts" / "frontmatter.tsv")
    table = importer.irql_spelling_table(rows)
    assert len(table) >= 65
    kinds = {spec.kind for _, _, spec in table}
    assert kinds <= {"level", "any", "not-applicable", "conditional", "see-remarks", "unrecognised"}
    # Only junk values are unrecognised.
    assert {s for s, _, spec in table if spec.kind == "unrecognised"} == {
        "AcxObjectBagRetrieveBlob",
        "_Must_inspect_result_",
    }


def test_strip_html_keeps_comparisons() -> None:
    assert strip_html("<= APC_LEVEL") == "<= APC_LEVEL"
    assert strip_html("<DISPATCH_LEVEL") == "<DISPATCH_LEVEL"
    assert strip_html("<b>ZwClose</b> &lt;= <i>x</i>").split() == ["ZwClose", "<=", "x"]


def test_crlf_page_parses_like_lf(tmp_path: Path) -> None:
    lf = (SHARED / "seed" / "ZwOpenProcessTokenEx.md").read_bytes().decode("utf-8")
    lf = lf.replace("\r\n", "\n")
    crlf = lf.replace("\n", "\r\n")
    (tmp_path / "lf.md").write_bytes(lf.encode("utf-8"))
    (tmp_path / "crlf.md").write_bytes(crlf.encode("utf-8"))
    assert b"\r\n" in (tmp_path / "crlf.md").read_bytes()
    pages = [
        parse_page((tmp_path / f).read_bytes().decode("utf-8"), "p.md")
        for f in ("lf.md", "crlf.md")
    ]
    assert pages[0] == pages[1]
    assert pages[0].value("req.irql") == "PASSIVE_LEVEL"
    assert pages[0].names("api_name") == ["ZwOpenProcessTokenEx", "NtOpenProcessTokenEx"]
    assert [p.direction for p in pages[0].params] == ["in", "in", "in", "out"]
    assert page_facts(pages[0], "ZwOpenProcessTokenEx") == page_facts(
        pages[1], "ZwOpenProcessTokenEx"
    )


def test_param_annotations() -> None:
    text = (
        "---\napi_name:\n - ZwX\nreq.irql: PASSIVE_LEVEL\n---\n\n## -parameters\n\n"
        "### -param A [in, optional]\n\na\n\n### -param B [out, optional]\n\nb\n\n"
        "### -param C [in, out]\n\nc\n\n### -param D [in/out]\n\nd\n\n### -param E\n\ne\n"
        "\n## -returns\n\nSTATUS_SUCCESS\n"
    )
    page = parse_page(text, "x/nf-x-zwx.md")
    assert [(p.name, p.direction, p.optional) for p in page.params] == [
        ("A", "in", True),
        ("B", "out", True),
        ("C", "in, out", False),
        ("D", "in, out", False),
        ("E", None, False),
    ]


def _mini_shared(root: Path, tsv_rows: list[str]) -> Path:
    (root / "ddi-docs").mkdir(parents=True)
    (root / "ddi-docs" / "MANIFEST.tsv").write_text(
        "file\tsource_path\tgit_blob_sha1\n", encoding="utf-8"
    )
    (root / "seed").mkdir()
    shutil.copyfile(
        SHARED / "seed" / "ZwOpenProcessTokenEx.md", root / "seed" / "ZwOpenProcessTokenEx.md"
    )
    (root / "ddi-facts").mkdir()
    columns = "api_name header_folder req.irql req.ddi-compliance req.header req.dll req.lib"
    header = "\t".join([*columns.split(), "uid", "source_path"]) + "\n"
    (root / "ddi-facts" / "frontmatter.tsv").write_text(
        header + "".join(r + "\n" for r in tsv_rows), encoding="utf-8"
    )
    return root


def test_seed_second_api_name_gets_its_own_entry(tmp_path: Path) -> None:
    row = (
        "ZwOpenProcessTokenEx\tntifs\tPASSIVE_LEVEL\tPowerIrpDDis, HwStorPortProhibitedDDIs\t"
        "ntifs.h\tNtosKrnl.exe\tNtosKrnl.lib\tNF:ntifs.ZwOpenProcessTokenEx\t"
        "ntifs/nf-ntifs-zwopenprocesstokenex.md"
    )
    shared = _mini_shared(tmp_path / "shared", [row])
    got = build_table(shared)["routines"]
    assert isinstance(got, dict)
    assert set(got) == {"ZwOpenProcessTokenEx", "NtOpenProcessTokenEx"}
    zw, nt = got["ZwOpenProcessTokenEx"], got["NtOpenProcessTokenEx"]
    assert zw["page"] == nt["page"] == "ntifs/nf-ntifs-zwopenprocesstokenex.md"
    assert zw["twin"] == "NtOpenProcessTokenEx" and nt["twin"] == "ZwOpenProcessTokenEx"
    for key in ("max_irql", "handle_out_param", "attributes_param", "access_param", "release"):
        assert nt[key] == zw[key]
        assert nt["sources"][key].startswith("ntifs/nf-ntifs-zwopenprocesstokenex.md#")
    assert nt["compliance"] == ["HwStorPortProhibitedDDIs", "PowerIrpDDis"]


def test_tsv_only_twin_and_fact_filter(tmp_path: Path) -> None:
    rows = [
        "ZwFoo\twdm\tPASSIVE_LEVEL\t\twdm.h\t\t\tNF:wdm.ZwFoo\twdm/nf-wdm-zwfoo.md",
        "NtFoo\twdm\t\t\twdm.h\t\t\tNF:wdm.NtFoo\twdm/nf-wdm-ntfoo.md",
        "Bare\twdm\t\t\twdm.h\t\t\tNF:wdm.Bare\twdm/nf-wdm-bare.md",
        "AnyLevel\twdm\tAny level\t\twdm.h\t\t\tNF:wdm.AnyLevel\twdm/nf-wdm-anylevel.md",
        "Junk\twdm\t_Must_inspect_result_\t\twdm.h\t\t\tNF:wdm.Junk\twdm/nf-wdm-junk.md",
    ]
    shared = _mini_shared(tmp_path / "shared", rows)
    got = build_table(shared)["routines"]
    assert isinstance(got, dict)
    assert "Bare" not in got and "Junk" not in got
    assert got["AnyLevel"]["max_irql"] == "HIGH_LEVEL"
    assert got["AnyLevel"]["sources"]["max_irql"] == "wdm/nf-wdm-anylevel.md#req.irql"
    assert got["ZwFoo"]["twin"] == "NtFoo"
    assert got["ZwFoo"]["sources"]["twin"] == "wdm/nf-wdm-ntfoo.md#api_name"
    assert got["NtFoo"]["twin"] == "ZwFoo" and got["NtFoo"]["max_irql"] is None


HTML_PAGE = (
    "---\r\nUID: NF:wdm.ZwOpenWidget\r\nreq.irql: <b>&lt;= APC_LEVEL</b>\r\n"
    "req.ddi-compliance: PowerIrpDDis\r\napi_name:\r\n - ZwOpenWidget\r\n - NtOpenWidget\r\n"
    "---\r\n\r\n## -parameters\r\n\r\n"
    "### -param WidgetHandle [out]\r\n\r\n"
    "<p>Pointer to a HANDLE variable that receives a handle to the widget.</p>\r\n\r\n"
    "### -param DesiredAccess [in]\r\n\r\n<table>\r\n<tr><th>Value</th><th>Meaning</th></tr>\r\n"
    "<tr><td>WIDGET_READ</td><td>Read it. Callers must not close it twice.</td></tr>\r\n"
    "</table>\r\n\r\n"
    "### -param ObjectAttributes [in]\r\n\r\n<p>Pointer to an <a href=\"x\">OBJECT_ATTRIBUTES"
    "</a> structure.</p>\r\n\r\n"
    "## -returns\r\n\r\n<table>\r\n<tr><th>Return code</th><th>Description</th></tr>\r\n"
    "<tr><td><dl><dt><b>STATUS_SUCCESS</b></dt></dl></td><td>Opened.</td></tr>\r\n"
    "</table>\r\n\r\n"
    "## -remarks\r\n\r\n| Step | What |\r\n|---|---|\r\n| 1 | Open |\r\n\r\n"
    "<p>Once the handle pointed to by <i>WidgetHandle</i> is no longer in use, the driver "
    "must close it by calling <a href=\"y\"><b>ZwClose</b></a>.</p>\r\n"
)


def test_html_and_markdown_tables_in_a_crlf_page() -> None:
    page = parse_page(HTML_PAGE, "wdm/nf-wdm-zwopenwidget.md")
    assert [(p.name, p.direction) for p in page.params] == [
        ("WidgetHandle", "out"), ("DesiredAccess", "in"), ("ObjectAttributes", "in")]
    facts = page_facts(page, "ZwOpenWidget")
    assert facts.indices == {"handle_out_param": 0, "access_param": 1,
                             "object_attributes_param": 2}
    assert facts.index_sources["handle_out_param"] == "Parameters: WidgetHandle"
    # The table row about closing is not the page's release duty: the Remarks are.
    assert (facts.release, facts.release_section) == (["ZwClose"], "Remarks")
    assert facts.returns_status is True  # STATUS_SUCCESS inside an HTML table cell
    spec = normalize_irql(page.value("req.irql"))
    assert (spec.max_irql, spec.kind) == ("APC_LEVEL", "level")
    assert facts.twin_names["NtOpenWidget"] == "api_name"


def test_the_lazy_table_is_the_eager_one() -> None:
    # `RoutineTable` builds a routine when it is first asked for; whatever is asked, in
    # whatever order, it answers as a dict built up front from the same files would.
    import pickle

    from ddilint.knowledge import (
        RoutineTable,
        _apply_overlay,
        _load_files,
        _routine_from,
        build_knowledge,
    )

    data, overlay, digest = _load_files()
    eager = {name: _routine_from(name, raw) for name, raw in data["routines"].items()}
    for name, raw in overlay["routines"].items():
        eager[name] = _apply_overlay(eager.get(name), name, raw)
    table = build_knowledge(data, overlay, sources=digest).routines
    assert isinstance(table, RoutineTable)
    assert table.get("ZwOpenProcessTokenEx") == eager["ZwOpenProcessTokenEx"]
    assert "ZwClose" in table and "NoSuchRoutine" not in table
    assert table.get("NoSuchRoutine", 7) == 7
    with pytest.raises(KeyError):
        table["NoSuchRoutine"]
    assert len(table) == len(eager)
    assert list(table) == list(eager)
    assert dict(table.items()) == eager
    again = pickle.loads(pickle.dumps(table))
    assert dict(again) == eager


def test_the_generated_table_is_read_when_a_routine_is_looked_up() -> None:
    # A run whose results all come from the cache looks up no routine: it must not pay for
    # reading the generated table. The overlay's entries are still checked up front, and
    # apply, in order, to the routine when it is built.
    from ddilint.knowledge import RoutineTable, build_knowledge

    reads: list[int] = []

    class Generated(dict[str, object]):
        def get(self, key: str, default: object = None) -> object:
            reads.append(1)
            return super().get(key, default)

    generated = Generated(routines={"ZwWidget": {"header": "ntifs.h", "page": "p.md"}})
    overlay = {"routines": {"ZwWidget": {"closes_handle_param": 0, "source": "Remarks"},
                            "MyOnly": {"returns_status": True}}}
    extra = {"ZwWidget": {"returns_status": True}}
    knowledge = build_knowledge(generated, overlay, extra, sources="x")
    assert reads == [] and knowledge.fingerprint
    widget = knowledge.get("ZwWidget")
    assert reads == [1]
    assert widget is not None and widget.header == "ntifs.h"
    assert (widget.closes_handle_param, widget.returns_status) == (0, True)
    assert widget.source("closes_handle_param") == "p.md#Remarks (overlay.toml)"
    mine = knowledge.get("MyOnly")
    assert mine is not None and mine.returns_status is True
    assert list(knowledge.routines) == ["ZwWidget", "MyOnly"] and len(knowledge.routines) == 2
    assert knowledge.get("NoSuch") is None and "NoSuch" not in knowledge.routines
    assert isinstance(knowledge.routines, RoutineTable)
    with pytest.raises(ValueError, match="unknown key"):
        build_knowledge(generated, {"routines": {"ZwWidget": {"no_such_fact": 1}}})
    # The first name asked for may be one only the overlay has.
    fresh = build_knowledge(Generated(routines={}), overlay, sources="x")
    only = fresh.get("MyOnly")
    assert only is not None and only.returns_status is True


def test_an_overlay_can_take_a_bound_away() -> None:
    # `max_irql = ""` in the overlay: the page's bound holds only in a case the call does
    # not show (pageable memory), so there is none to check; the source says why.
    from ddilint.knowledge import build_knowledge, load_knowledge

    generated = {"routines": {"RtlWidgetBits": {"max_irql": "APC_LEVEL", "page": "w.md",
                                                "irql_text": "<= APC_LEVEL (See Remarks)"}}}
    overlay = {"routines": {"RtlWidgetBits": {"max_irql": "", "source": "Remarks"}}}
    widget = build_knowledge(generated, overlay).get("RtlWidgetBits")
    assert widget is not None and widget.max_irql is None
    assert widget.irql_text == "<= APC_LEVEL (See Remarks)"
    assert widget.source("max_irql") == "w.md#Remarks (overlay.toml)"
    shipped = load_knowledge().get("RtlClearBits")
    assert shipped is not None and shipped.max_irql is None


def test_the_shipped_table_is_read_only_when_looked_into(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A run served from the cache needs the knowledge's fingerprint, not its routines: the
    # 3.7 MB generated table is neither read nor parsed until a routine is looked up.
    from pathlib import Path

    import ddilint.knowledge as kn

    reads: list[str] = []
    real = Path.read_bytes

    def counting(self: Path) -> bytes:
        reads.append(self.name)
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    kn._load_files.cache_clear()
    kn._default_knowledge.cache_clear()
    try:
        knowledge = kn.load_knowledge()
        assert knowledge.fingerprint and "routines.json" not in reads
        assert knowledge.get("ZwClose") is not None
        assert reads.count("routines.json") == 1
        assert knowledge.get("ZwOpenKey") is not None and reads.count("routines.json") == 1
    finally:
        kn._load_files.cache_clear()
        kn._default_knowledge.cache_clear()

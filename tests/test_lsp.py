"""`ddilint lsp` driven by a real LSP client over a stdio pipe: diagnostics on open, after an
edit (debounced), on save; code, severity, documentation link, related information from the
trace; quick fixes as code actions; the project config applies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ddilint.findings import Location
from ddilint.lsp import LineIndex
from tests.lsp_client import LspClient

DRIVER = """#include <ntddk.h>
// naïve comment: the column of what follows is in UTF-16 units
VOID Cleanup(HANDLE h)
{
    /* é */ NtFlushKey(h);
}
"""


@pytest.fixture()
def client(tmp_path: Path) -> Iterator[LspClient]:
    c = LspClient()
    c.initialize(tmp_path)
    yield c
    assert c.close() == 0


def _open(c: LspClient, uri: str, text: str, version: int = 1) -> None:
    c.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "c", "version": version, "text": text}})


def _change(c: LspClient, uri: str, version: int, changes: list[dict[str, Any]]) -> None:
    c.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                        "contentChanges": changes})


def test_open_edit_save_and_quick_fix(client: LspClient, tmp_path: Path) -> None:
    path = tmp_path / "drv.c"
    path.write_text(DRIVER, encoding="utf-8")
    uri = path.as_uri()
    _open(client, uri, DRIVER)
    diags = client.diagnostics(uri, 1)["diagnostics"]
    assert len(diags) == 1
    d = diags[0]
    assert d["code"] == "DDI401" and d["severity"] == 2 and d["source"] == "ddilint"
    assert d["range"] == {"start": {"line": 4, "character": 12},
                          "end": {"line": 4, "character": 22}}
    assert d["codeDescription"]["href"].startswith("https://learn.microsoft.com/")
    assert "NtFlushKey called from kernel-mode code" in d["message"]

    # the quick fix renames the call
    actions = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": d["range"],
        "context": {"diagnostics": [d]}})
    assert [a["title"] for a in actions] == [
        "Call ZwFlushKey (DDI401)", "Suppress DDI401 on this line (// ddilint: ignore[DDI401])"]
    assert actions[0]["kind"] == "quickfix"
    [change] = actions[0]["edit"]["documentChanges"]
    assert change["textDocument"] == {"uri": uri, "version": 1}  # stale edits are refused
    assert change["edits"] == [{"range": d["range"], "newText": "ZwFlushKey"}]
    [suppress] = actions[1]["edit"]["documentChanges"][0]["edits"]
    assert suppress == {"range": {"start": {"line": 4, "character": 26},
                                  "end": {"line": 4, "character": 26}},
                        "newText": "  // ddilint: ignore[DDI401]"}

    # two quick edits: one analysis (debounced) on the latest version
    _change(client, uri, 2, [{"range": {"start": {"line": 4, "character": 12},
                                        "end": {"line": 4, "character": 14}}, "text": "Zw"}])
    _change(client, uri, 3, [{"range": {"start": {"line": 5, "character": 1},
                                        "end": {"line": 5, "character": 1}},
                              "text": "\nVOID More(HANDLE h)\n{\n    NtClose(h);\n}"}])
    published = client.diagnostics(uri)
    assert published["version"] == 3  # version 2 was never analyzed on its own
    assert [(x["code"], x["range"]["start"]["line"]) for x in published["diagnostics"]] == [
        ("DDI401", 8)]

    # a suppression comment typed in and saved: diagnostics clear on save
    _change(client, uri, 4, [{"range": {"start": {"line": 8, "character": 15},
                                        "end": {"line": 8, "character": 15}},
                              "text": " // ddilint: ignore[DDI401]"}])
    client.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
    assert client.diagnostics(uri, 4)["diagnostics"] == []


def test_utf8_position_encoding(tmp_path: Path) -> None:
    c = LspClient()
    init = c.initialize(tmp_path, encodings=("utf-8", "utf-16"))
    assert init["capabilities"]["positionEncoding"] == "utf-8"
    uri = (tmp_path / "drv.c").as_uri()
    _open(c, uri, DRIVER)
    [d] = c.diagnostics(uri, 1)["diagnostics"]
    # "    /* é */ NtFlushKey": é is two UTF-8 bytes
    assert d["range"]["start"] == {"line": 4, "character": 13}
    assert c.close() == 0


def test_config_and_related_information(client: LspClient, tmp_path: Path) -> None:
    (tmp_path / ".ddilint.toml").write_text('mode = {"um/**" = "user"}\n')
    (tmp_path / "um").mkdir()
    um = (tmp_path / "um" / "tool.c").as_uri()
    _open(client, um, "VOID F(HANDLE h)\n{\n    NtClose(h);\n}\n")
    assert client.diagnostics(um, 1)["diagnostics"] == []  # user mode by config: silent
    km = (tmp_path / "km.c").as_uri()
    _open(client, km, "VOID F(HANDLE h)\n{\n    NtClose(h);\n}\n")
    assert [d["code"] for d in client.diagnostics(km, 1)["diagnostics"]] == ["DDI401"]
    client.notify("textDocument/didClose", {"textDocument": {"uri": km}})
    assert client.diagnostics(km)["diagnostics"] == []


def test_trace_steps_become_related_information(tmp_path: Path) -> None:
    from ddilint.findings import Finding, Severity, TraceStep
    from ddilint.lsp import DdilintServer

    server = DdilintServer()
    text = "a\nbb\nccc\n"
    p = (tmp_path / "x.c").as_posix()
    f = Finding("DDI201", "handle-leak", Severity.ERROR, "leak", Location(p, 2, 1),
                trace=(TraceStep(Location(p, 1, 1), "opened here"),
                       TraceStep(Location(p, 3, 2), "returns here")))
    [d] = server.diagnostics((tmp_path / "x.c").as_uri(), text, [f])
    assert d.severity == 1 and d.code == "DDI201"
    assert [(r.message, r.location.range.start.line, r.location.range.start.character)
            for r in d.related_information or []] == [("opened here", 0, 0),
                                                      ("returns here", 2, 1)]


def test_line_index_encodings() -> None:
    text = "x = 'é𝄞';  NtClose(h);\n"
    col = text.index("NtClose") + 1  # code points
    off = len(text[:col - 1].encode("utf-8"))
    for enc, expected in (("utf-16", col - 1 + 1), ("utf-8", off), ("utf-32", col - 1)):
        idx = LineIndex(text, enc)
        assert idx.from_column(1, col).character == expected
        assert idx.from_offset(off).character == expected
    # Lines asked in turn, ASCII or not (the last line's text and kind are kept): each
    # answer as if asked alone.
    lines = ["  NtClose(h); " * 3, "x = 'é𝄞';  NtClose(h);", "", "\tNtClose(k);\r"]
    text = "\n".join(lines) + "\n"
    for enc in ("utf-16", "utf-8", "utf-32"):
        idx = LineIndex(text, enc)
        for line, col in [(1, 3), (2, 12), (1, 15), (4, 2), (2, 1), (3, 1), (2, 99), (4, 99)]:
            alone = LineIndex(text, enc)
            assert idx.from_column(line, col) == alone.from_column(line, col)
            assert idx.word_end(line, col) == alone.word_end(line, col)
            assert idx.line(line) == lines[line - 1].rstrip("\r")
        assert idx.from_column(2, 12).character == {"utf-16": 12, "utf-8": 15, "utf-32": 11}[enc]


def test_whole_program_context_and_related_information(client: LspClient,
                                                       tmp_path: Path) -> None:
    from tests.test_precommit import DPC, HELPER

    (tmp_path / ".ddilint.toml").write_text("")  # the project root
    (tmp_path / "dpc.c").write_text(DPC)
    helper = tmp_path / "helper.c"
    helper.write_text(HELPER)
    uri = helper.as_uri()
    _open(client, uri, HELPER)
    [d] = client.diagnostics(uri, 1)["diagnostics"]
    assert d["code"] == "DDI301" and d["severity"] == 1
    assert d["range"]["start"] == {"line": 4, "character": 22}
    related = [(r["location"]["uri"], r["location"]["range"]["start"]["line"], r["message"])
               for r in d["relatedInformation"]]
    dpc_uri = (tmp_path / "dpc.c").as_uri()
    assert related[0][:2] == (dpc_uri, 13) and "OnDpc is a DPC" in related[0][2]
    assert related[1] == (dpc_uri, 8, "calls CacheToken")
    # an unsaved edit of dpc.c (the call removed) counts for helper.c
    _open(client, dpc_uri, DPC)
    client.diagnostics(dpc_uri, 1)
    _change(client, dpc_uri, 2, [{"text": DPC.replace("    CacheToken(Context);\n", "")}])
    client.diagnostics(dpc_uri, 2)
    _change(client, uri, 2, [{"text": HELPER + "\n"}])
    assert client.diagnostics(uri, 2)["diagnostics"] == []



def test_a_buffer_takes_the_mode_its_project_headers_show(client: LspClient,
                                                         tmp_path: Path) -> None:
    (tmp_path / ".ddilint.toml").write_text("")  # the project root
    (tmp_path / "precomp.h").write_text("#include <windows.h>\n#include <winternl.h>\n")
    text = '#include "precomp.h"\nNTSTATUS CloseIt(HANDLE h) { return NtClose(h); }\n'
    tool = tmp_path / "tool.c"
    tool.write_text(text)
    _open(client, tool.as_uri(), text)
    assert client.diagnostics(tool.as_uri(), 1)["diagnostics"] == []
    # The header on disk now says kernel mode: the Nt name is wrong there.
    (tmp_path / "precomp.h").write_text("#include <ntddk.h>\n")
    _change(client, tool.as_uri(), 2, [{"text": text + "\n"}])
    [d] = client.diagnostics(tool.as_uri(), 2)["diagnostics"]
    assert d["code"] == "DDI401"

def test_suppression_edit_forms() -> None:
    from ddilint.lsp import suppression_edit

    idx = LineIndex("NtClose(h);  // ddilint: ignore[DDI101]\n#define X NtClose(h) \\\n"
                    "NtClose(h);\n")
    e = suppression_edit(idx, 1, "DDI401")
    assert e is not None and e.new_text == ", DDI401" and e.range.start.character == 38
    assert suppression_edit(idx, 1, "DDI101") is None  # already there
    assert suppression_edit(idx, 2, "DDI401") is None  # a macro continues on the next line
    e = suppression_edit(idx, 3, "DDI401")
    assert e is not None and e.new_text == "  // ddilint: ignore[DDI401]"


def test_bad_config_is_shown_and_defaults_apply(client: LspClient, tmp_path: Path) -> None:
    (tmp_path / ".ddilint.toml").write_text("mode = 'kernal'\n")
    uri = (tmp_path / "drv.c").as_uri()
    _open(client, uri, DRIVER)
    assert [d["code"] for d in client.diagnostics(uri, 1)["diagnostics"]] == ["DDI401"]
    shown = client.wait(lambda m: m.get("method") == "window/showMessage")
    assert shown["params"]["type"] == 1
    assert ".ddilint.toml" in shown["params"]["message"]
    assert "key 'mode'" in shown["params"]["message"]


OPENER = """#include <ntifs.h>
NTSTATUS OpenForCaller(_In_ PUNICODE_STRING Path, _Out_ PHANDLE Key)
{
    OBJECT_ATTRIBUTES oa;
    HANDLE key = NULL;
    NTSTATUS status;
    InitializeObjectAttributes(&oa, Path, OBJ_CASE_INSENSITIVE, NULL, NULL);
    status = ZwOpenKey(&key, KEY_READ, &oa);
    if (NT_SUCCESS(status)) {
        *Key = key;
    }
    return status;
}
"""
CALLER = """#include <ntifs.h>
NTSTATUS OpenForCaller(_In_ PUNICODE_STRING Path, _Out_ PHANDLE Key);
extern UNICODE_STRING g_Path;
_Dispatch_type_(IRP_MJ_DEVICE_CONTROL)
NTSTATUS Ioctl(_In_ PDEVICE_OBJECT DeviceObject, _Inout_ PIRP Irp)
{
    HANDLE key = NULL;
    NTSTATUS status = OpenForCaller(&g_Path, &key);
    UNREFERENCED_PARAMETER(DeviceObject);
    if (NT_SUCCESS(status)) {
        *(PHANDLE)Irp->AssociatedIrp.SystemBuffer = key;
    }
    Irp->IoStatus.Status = status;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}
"""


def test_the_callers_code_is_read_from_their_buffers(client: LspClient,
                                                     tmp_path: Path) -> None:
    """DDI101's question about the callers of a helper (do they put the handle in the
    reply?) reads their code, as an open buffer has it when it is open."""
    (tmp_path / ".ddilint.toml").write_text("")  # the project root
    opener = tmp_path / "opener.c"
    opener.write_text(OPENER)
    caller = tmp_path / "caller.c"
    caller.write_text(CALLER)
    uri = opener.as_uri()
    _open(client, uri, OPENER)
    assert client.diagnostics(uri, 1)["diagnostics"] == []
    # An unsaved edit of the caller keeps the handle for the driver instead.
    kept = CALLER.replace("*(PHANDLE)Irp->AssociatedIrp.SystemBuffer = key;",
                          "ZwFlushKey(key);\n        ZwClose(key);")
    _open(client, caller.as_uri(), kept)
    client.diagnostics(caller.as_uri(), 1)
    _change(client, uri, 2, [{"text": OPENER + "\n"}])
    [d] = client.diagnostics(uri, 2)["diagnostics"]
    assert d["code"] == "DDI101" and d["range"]["start"]["line"] == 7

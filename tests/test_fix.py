"""`--fix` and `--diff` on real files: encodings and line endings kept, idempotent, atomic,
never writing a file that would be corrupted."""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddilint.cli import main
from ddilint.findings import Finding, Fix, Location, Severity, TextEdit
from ddilint.fixes import _choose_edits, _conflict, fix_files

DRIVER = ("#include <ntddk.h>\n"
          "// Ünïcode comment: naïve café\n"
          "VOID F(HANDLE h, HANDLE k)\n{\n"
          "    NtFlushKey(h); NtFlushKey(k);\n"
          "}\n")
FIXED = DRIVER.replace("NtFlushKey", "ZwFlushKey")


@pytest.mark.parametrize(("encoding", "newline"), [
    ("utf-8", "\n"), ("utf-8", "\r\n"), ("utf-8-sig", "\r\n"), ("utf-16", "\r\n"),
    ("utf-16-be", "\n"), ("utf-32", "\r\n"), ("utf-32-be", "\n"),
])
def test_fix_keeps_encoding_and_line_endings(tmp_path: Path, encoding: str, newline: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "drv.c"
    if encoding in ("utf-16-be", "utf-32-be"):
        bom = codecs.BOM_UTF16_BE if encoding == "utf-16-be" else codecs.BOM_UTF32_BE
        f.write_bytes(bom + DRIVER.replace("\n", newline).encode(encoding))
        expected = bom + FIXED.replace("\n", newline).encode(encoding)
    else:
        f.write_bytes(DRIVER.replace("\n", newline).encode(encoding))
        expected = FIXED.replace("\n", newline).encode(encoding)
    os.chmod(f, 0o640)
    assert main(["check", "--fix", str(tmp_path)]) == 0  # nothing left after fixing
    assert f.read_bytes() == expected
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    assert "fixed 2 finding(s) in 1 file(s)" in capsys.readouterr().err
    # a second --fix changes nothing
    mtime = f.stat().st_mtime_ns
    assert main(["check", "--fix", str(tmp_path)]) == 0
    assert f.read_bytes() == expected and f.stat().st_mtime_ns == mtime
    assert not [p for p in tmp_path.iterdir() if p.name != "drv.c"]  # no temp files left


@pytest.mark.skipif(not hasattr(os, "symlink") or not hasattr(os, "link"),
                    reason="no links")
def test_fix_writes_through_links_and_keeps_them(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "drv.c").write_text(DRIVER)
    proj = tmp_path / "proj"
    proj.mkdir()
    os.symlink(shared / "drv.c", proj / "link.c")  # a source shared by two drivers
    (proj / "one.c").write_text(DRIVER)
    os.link(proj / "one.c", proj / "two.c")  # one file under two names
    assert main(["check", "--no-cache", "--fix", str(proj)]) == 0
    # Before: the link became a fixed copy of its own and shared/drv.c kept NtFlushKey;
    # one.c was replaced by a new file and two.c kept the old text.
    assert (proj / "link.c").is_symlink()
    assert (shared / "drv.c").read_text() == FIXED
    assert (proj / "one.c").read_text() == (proj / "two.c").read_text() == FIXED
    assert os.stat(proj / "one.c").st_ino == os.stat(proj / "two.c").st_ino
    assert os.stat(proj / "one.c").st_nlink == 2


def _reference_choice(findings: list[Finding]) -> tuple[list[TextEdit], int, list[str]]:
    """`_choose_edits` as it compared each fix with every edit chosen before it."""
    chosen: list[TextEdit] = []
    applied, skipped, seen = 0, [], set()
    for f in sorted(findings, key=Finding.sort_key):
        fix = f.fixes[0]
        edits = [e for e in fix.edits if (e.start, e.end, e.replacement) not in seen]
        if not edits:
            continue
        if any(_conflict(e, c) for e in edits for c in chosen):
            skipped.append(f"line {f.location.line}: {fix.description} overlaps another fix")
            continue
        chosen.extend(edits)
        seen.update((e.start, e.end, e.replacement) for e in edits)
        applied += 1
    return chosen, applied, skipped


_EDIT = st.builds(lambda a, n, r: TextEdit(a, a + n, r), st.integers(0, 30),
                  st.sampled_from([0, 0, 1, 2, 5]), st.sampled_from(["x", "y", ""]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.lists(_EDIT, min_size=1, max_size=3)),
                max_size=12))
def test_fixes_are_chosen_as_when_each_was_compared_with_all(
        fixes: list[tuple[int, list[TextEdit]]]) -> None:
    # The chosen edits are looked up by place (a generated file's 8,000 fixes took 4.1 s
    # when each was compared with all): the same fixes win, in the same order.
    findings = [Finding("X1", "x", Severity.ERROR, "m", Location("p.c", line, i + 1),
                        fixes=(Fix("fix", tuple(edits)),))
                for i, (line, edits) in enumerate(fixes)]
    assert _choose_edits(findings) == _reference_choice(findings)


def test_diff_shows_and_changes_nothing(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "drv.c"
    f.write_text(DRIVER, encoding="utf-8")
    assert main(["check", "--diff", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"--- {f.as_posix()}\n+++ {f.as_posix()}\n" in out  # absolute: no a/ b/
    assert "-    NtFlushKey(h); NtFlushKey(k);\n+    ZwFlushKey(h); ZwFlushKey(k);\n" in out
    assert f.read_text(encoding="utf-8") == DRIVER
    f.write_text(FIXED, encoding="utf-8")
    assert main(["check", "--diff", str(tmp_path)]) == 0
    assert capsys.readouterr().out == ""


def test_lossy_file_is_never_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "drv.c"
    raw = DRIVER.encode("utf-8").replace("naïve".encode(), b"na\x81ve")  # invalid in cp1252 too
    f.write_bytes(raw)
    assert main(["check", "--fix", str(tmp_path)]) == 1
    assert f.read_bytes() == raw
    assert "not fixed" in capsys.readouterr().err


def test_fix_that_breaks_parsing_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "drv.c"
    f.write_text(DRIVER, encoding="utf-8")
    start = DRIVER.encode().index(b"NtFlushKey(h)")  # byte offsets
    bad = Finding("X1", "x", Severity.ERROR, "m", Location(f.as_posix(), 5, 5),
                  fixes=(Fix("break it", (TextEdit(start, start + 11, "ZwFlushKey({{"),)),))
    [res] = fix_files([bad], write=True)
    assert res.applied == 0 and "does not parse" in res.skipped[0]
    assert f.read_text(encoding="utf-8") == DRIVER


def test_overlapping_fixes_apply_one_and_file_changed_meanwhile(tmp_path: Path) -> None:
    f = tmp_path / "drv.c"
    f.write_text(DRIVER, encoding="utf-8")
    p = f.as_posix()
    start = DRIVER.encode().index(b"NtFlushKey(h)")  # byte offsets
    a = Finding("X1", "x", Severity.ERROR, "m", Location(p, 5, 5),
                fixes=(Fix("a", (TextEdit(start, start + 10, "ZwFlushKey"),)),))
    b = Finding("X2", "y", Severity.ERROR, "m", Location(p, 5, 6),
                fixes=(Fix("b", (TextEdit(start + 2, start + 10, "Other"),)),))
    [res] = fix_files([a, b], write=True)
    assert res.applied == 1 and "overlaps" in res.skipped[0]
    assert "ZwFlushKey(h); NtFlushKey(k);" in f.read_text(encoding="utf-8")
    [res] = fix_files([a], write=True, stamps={p: (1, 1)})
    assert res.applied == 0 and "changed on disk" in res.skipped[0]


def test_diff_applies_with_git_apply(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    (tmp_path / "src").mkdir()
    f = tmp_path / "src" / "drv.c"
    # A page break (`^L`) in the changed lines: a line of its own for `str.splitlines`, which
    # cut the diff's lines there and made a patch `git apply` refused.
    source = DRIVER.replace("{\n", "{ /* \f */\n").replace("\n", "\r\n")
    f.write_bytes(source.encode("utf-8"))
    monkeypatch.chdir(tmp_path)
    assert main(["check", "--diff", "src"]) == 1
    patch = capsys.readouterr().out
    assert patch.startswith("--- a/src/drv.c\n+++ b/src/drv.c\n")
    proc = subprocess.run(["git", "apply", "-"], input=patch.encode("utf-8"), cwd=tmp_path,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f.read_bytes() == source.replace("NtFlushKey", "ZwFlushKey").encode("utf-8")


ATTRS = """#include <ntddk.h>
VOID Open(PHANDLE t, PHANDLE u)
{
    ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY, 0, t);
    ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY, OBJ_INHERIT, u);
}
"""


def test_attribute_fixes_through_the_cli_in_several_passes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A plugin rule in the style of DDI101's fix (`0` -> OBJ_KERNEL_HANDLE, `X` ->
    `X | OBJ_KERNEL_HANDLE`) plus a rule whose fix overlaps it: --fix applies one, re-analyzes
    and applies the other in a second pass; a second --fix changes nothing."""
    from collections.abc import Iterator

    import ddilint.cli as cli
    from ddilint.hookspecs import hookimpl
    from ddilint.plugins import plugin_manager
    from ddilint.rules.base import FileContext, Rule

    class AddKernelHandle(Rule):
        code, name, severity = "XFIX001", "add-kernel-handle", Severity.ERROR

        def check_file(self, ctx: FileContext) -> Iterator[Finding]:
            for call in ctx.file.calls:
                if call.callee != "ZwOpenProcessTokenEx" or len(call.args) < 3:
                    continue
                a = call.args[2]
                text = ctx.file.text(a.start, a.end)
                if "OBJ_KERNEL_HANDLE" in text:
                    continue
                edit = (TextEdit(a.start, a.end, "OBJ_KERNEL_HANDLE") if text == "0" else
                        TextEdit(a.end, a.end, " | OBJ_KERNEL_HANDLE"))
                yield ctx.finding(self, call.name_start, "attributes lack OBJ_KERNEL_HANDLE",
                                  fixes=(Fix("add OBJ_KERNEL_HANDLE", (edit,)),))

    class NoInherit(Rule):
        code, name, severity = "XFIX002", "no-inherit", Severity.ERROR

        def check_file(self, ctx: FileContext) -> Iterator[Finding]:
            for call in ctx.file.calls:
                if call.callee == "ZwOpenProcessTokenEx" and len(call.args) > 2:
                    a = call.args[2]
                    text = ctx.file.text(a.start, a.end)
                    if text.startswith("OBJ_INHERIT"):
                        yield ctx.finding(self, a.start, "inheritable kernel handle", fixes=(
                            Fix("drop OBJ_INHERIT",
                                (TextEdit(a.start, a.start + len("OBJ_INHERIT"), "0"),)),))

    class Plugin:
        @hookimpl
        def ddilint_rules(self) -> list[Rule]:
            return [AddKernelHandle(), NoInherit()]

    monkeypatch.setattr(cli, "plugin_manager", lambda: plugin_manager(extra=[Plugin()]))
    f = tmp_path / "drv.c"
    f.write_text(ATTRS, encoding="utf-8")
    assert main(["check", "--fix", "--select", "XFIX", str(f)]) == 0
    assert f.read_text(encoding="utf-8") == ATTRS.replace(
        "TOKEN_QUERY, 0, t", "TOKEN_QUERY, OBJ_KERNEL_HANDLE, t").replace(
        "TOKEN_QUERY, OBJ_INHERIT, u", "TOKEN_QUERY, 0 | OBJ_KERNEL_HANDLE, u")
    err = capsys.readouterr().err
    assert "fixed 3 finding(s) in 1 file(s)" in err and "overlaps" not in err
    before = f.read_bytes()
    assert main(["check", "--fix", "--select", "XFIX", str(f)]) == 0
    assert f.read_bytes() == before


def test_zw_to_nt_in_user_mode_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """DDI402's fix, applied by --fix on a real user-mode file with CRLF endings."""
    src = ("#include <windows.h>\r\n#include <winternl.h>\r\nvoid F(HANDLE h)\r\n{\r\n"
           "    ZwClose(h);\r\n}\r\n")
    f = tmp_path / "tool.c"
    f.write_bytes(src.encode("utf-8"))
    assert main(["check", "--fix", str(f)]) == 0
    assert f.read_bytes() == src.replace("ZwClose", "NtClose").encode("utf-8")
    assert "fixed 1 finding(s)" in capsys.readouterr().err


def test_fix_never_corrupts_a_file_property(tmp_path: Path) -> None:
    """Whatever the bytes on disk and whatever edits a rule proposes, --fix either leaves the
    file untouched or writes text that decodes the same way (same encoding and BOM, exact
    round trip) with the line-ending style kept."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from ddilint.analyzer.source import decode_bytes
    from ddilint.fixes import encode_like

    pieces = st.sampled_from([
        "NtClose(h);", "ZwClose(h);", "{", "}", "/* é */", "\n", "\r\n", "\x00", "int x;",
        "VOID F(HANDLE h)\n", "#include <ntddk.h>\n", "𝄞", "\t", "(", ")", "0", "OBJ_INHERIT"])
    prefixes = st.sampled_from([b"", codecs.BOM_UTF8, b"\xff\xfe", b"\x81"])
    outcomes = {"written": 0, "left": 0}

    @settings(max_examples=200, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(prefix=prefixes, parts=st.lists(pieces, max_size=25),
           edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 8),
                                    st.sampled_from(["ZwClose", "", "x | OBJ_KERNEL_HANDLE",
                                                     "(", "\n}\n", "é"])), max_size=4),
           utf16=st.booleans())
    def check(prefix: bytes, parts: list[str], edits: list[tuple[float, int, str]],
              utf16: bool) -> None:
        text = "".join(parts)
        raw = (codecs.BOM_UTF16_LE + text.encode("utf-16-le")) if utf16 else (
            prefix + text.encode("utf-8", "surrogatepass"))
        f = tmp_path / "drv.c"
        f.write_bytes(raw)
        p = f.as_posix()
        size = len(text.encode("utf-8", "surrogatepass"))
        findings = [Finding("X1", "x", Severity.ERROR, "m", Location(p, 1, 1 + i),
                            fixes=(Fix("f", (TextEdit(int(at * size), int(at * size) + n,
                                                      r),)),))
                    for i, (at, n, r) in enumerate(edits)]
        fix_files(findings, write=True)
        new = f.read_bytes()
        assert [x.name for x in tmp_path.iterdir()] == ["drv.c"]
        if new == raw:
            outcomes["left"] += 1
            return
        outcomes["written"] += 1
        before, after = decode_bytes(raw), decode_bytes(new)
        assert before.text is not None and after.text is not None
        assert encode_like(before.text, before.encoding, raw) == raw
        assert after.encoding == before.encoding and not after.notice
        assert encode_like(after.text, after.encoding, new) == new
        if "\r\n" in before.text and "\n" not in before.text.replace("\r\n", ""):
            assert "\n" not in after.text.replace("\r\n", "")

    check()
    assert outcomes["written"] > 5 and outcomes["left"] > 5, outcomes  # both paths tried


DDI101_DRIVER = """#include <ntddk.h>

_Dispatch_type_(IRP_MJ_DEVICE_CONTROL)
DRIVER_DISPATCH OnIoctl;

NTSTATUS OnIoctl(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    HANDLE token = NULL, key = NULL;
    OBJECT_ATTRIBUTES oa;
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\\\Registry\\\\Machine\\\\Software");
    NTSTATUS status;

    UNREFERENCED_PARAMETER(DeviceObject);
    status = ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY, 0, &token);
    if (NT_SUCCESS(status)) {
        ZwClose(token);
    }
    InitializeObjectAttributes(&oa, &name, OBJ_CASE_INSENSITIVE, NULL, NULL);
    status = ZwOpenKey(&key, KEY_READ, &oa);
    if (NT_SUCCESS(status)) {
        ZwClose(key);
    }
    Irp->IoStatus.Status = status;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}
"""


def test_missing_kernel_handle_fixes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """DDI101's fixes through --fix: `0` becomes OBJ_KERNEL_HANDLE, `X` becomes
    `X | OBJ_KERNEL_HANDLE`; afterwards DDI101 is gone and a second --fix changes nothing."""
    f = tmp_path / "ioctl.c"
    f.write_text(DDI101_DRIVER, encoding="utf-8")
    assert main(["check", "--select", "DDI101", str(f)]) == 1
    assert capsys.readouterr().out.count("DDI101") == 2
    assert main(["check", "--fix", "--select", "DDI101", str(f)]) == 0
    assert f.read_text(encoding="utf-8") == DDI101_DRIVER.replace(
        "TOKEN_QUERY, 0, &token", "TOKEN_QUERY, OBJ_KERNEL_HANDLE, &token").replace(
        "OBJ_CASE_INSENSITIVE, NULL", "OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL")
    assert "fixed 2 finding(s) in 1 file(s)" in capsys.readouterr().err
    fixed = f.read_bytes()
    assert main(["check", "--fix", str(f)]) == 0
    assert f.read_bytes() == fixed

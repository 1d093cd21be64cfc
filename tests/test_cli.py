"""The command line: formats, selection, exit statuses, rules and explain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ddilint.cli import main
from tests.conftest import ROOT

BAD = '#include <ntddk.h>\nVOID F(HANDLE h)\n{\n    NtClose(h);\n}\n'
GOOD = '#include <ntddk.h>\nVOID F(HANDLE h)\n{\n    ZwClose(h);\n}\n'


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    (tmp_path / "drv").mkdir()
    (tmp_path / "drv" / "bad.c").write_text(BAD)
    (tmp_path / "drv" / "good.c").write_text(GOOD)
    (tmp_path / "drv" / "notes.txt").write_text("NtClose(h);")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "junk.c").write_text(BAD)
    return tmp_path


def test_text_output_and_exit_one(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tree)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"{(tree / 'drv' / 'bad.c').as_posix()}:4:5: DDI401 "
                   "[nt-routine-in-kernel-mode] NtClose called from kernel-mode code: call "
                   "ZwClose instead; the Nt form keeps the caller's previous mode, so a user-mode "
                   "caller's checks apply"]


def test_json_output(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--format", "json", str(tree / "drv")]) == 1
    data = json.loads(capsys.readouterr().out)
    assert len(data) == 1
    f = data[0]
    assert {k: f[k] for k in ("line", "column", "code", "name", "severity")} == {
        "line": 4, "column": 5, "code": "DDI401", "name": "nt-routine-in-kernel-mode",
        "severity": "warning"}
    assert f["path"].endswith("bad.c")
    # A release routine gets no automatic rename: NtClose may close a user's handle on purpose.
    assert "fixes" not in f


def test_clean_tree_exits_zero(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tree / "drv" / "good.c")]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("sel", [["--ignore", "DDI401"], ["--ignore", "DDI4"],
                                 ["--ignore", "nt-routine-in-kernel-mode"],
                                 ["--select", "DDI2"]])
def test_select_and_ignore(tree: Path, sel: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", *sel, str(tree)]) == 0
    assert capsys.readouterr().out == ""


def test_usage_errors_exit_two(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tree / "nope")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["check", "--select", "DDI999", str(tree)]) == 2
    assert main(["check", "--ignore", "no-such-rule", str(tree)]) == 2
    assert main(["explain", "DDI777"]) == 2
    assert main(["bogus"]) == 2


def test_output_file(tree: Path) -> None:
    out = tree / "report.json"
    assert main(["check", "--format", "json", "-o", str(out), str(tree / "drv")]) == 1
    assert json.loads(out.read_text())[0]["code"] == "DDI401"


def test_rules_lists_whole_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    for code in ("DDI101", "DDI201", "DDI301", "DDI401", "DDI504", "DDI602"):
        assert code in out
    line401 = next(line for line in out.splitlines() if line.startswith("DDI401"))
    assert " yes " in line401


def test_explain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "nt-routine-in-kernel-mode"]) == 0
    out = capsys.readouterr().out
    assert "DDI401" in out and "ZwOpenProcessTokenEx" in out and "learn.microsoft.com" in out


def test_binary_and_bad_files_become_notices(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "blob.c").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "u16.c").write_bytes(BAD.encode("utf-16"))
    (tmp_path / "half.c").write_text("VOID F(HANDLE h) {\n    NtClose(h);\n  if (")
    assert main(["check", "--format", "json", str(tmp_path)]) == 1
    data = json.loads(capsys.readouterr().out)
    got = sorted((Path(f["path"]).name, f["code"], f["line"]) for f in data)
    assert got == [("blob.c", "DDI902", 1), ("half.c", "DDI401", 2), ("u16.c", "DDI401", 4)]


def test_a_report_that_cannot_be_written_is_an_error_not_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    drv = tmp_path / "drv.c"
    drv.write_text(BAD)
    # Plainly unwritable: said before the analysis.
    for flag, target, why in [
            ("-o", tmp_path / "missing" / "r.json", "no such directory"),
            ("-o", tmp_path, "it is a directory"),
            ("--write-baseline", drv / "b.json", "no such directory")]:
        assert main(["check", "--no-cache", flag, str(target), str(drv)]) == 2
        assert why in capsys.readouterr().err
    if os.path.exists("/dev/full"):  # writing fails only when it is tried
        assert main(["check", "--no-cache", "-o", "/dev/full", str(drv)]) == 2
        assert "cannot write to /dev/full: No space left on device" in capsys.readouterr().err


def test_a_fault_outside_the_analysis_is_one_line_and_exit_two(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    drv = tmp_path / "drv.c"
    drv.write_text(BAD)

    def broken(*_args: object) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr("ddilint.cli.format_json", broken)
    argv = ["check", "--no-cache", "--format", "json", str(drv)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "ddilint: internal error: RuntimeError: boom" in err
    assert "Traceback" not in err and "--debug" in err
    assert main([*argv, "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="a folder in use cannot go")
def test_a_current_directory_that_is_gone_is_said_plainly(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "drv.c").write_text(BAD)
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert main(["check", "--no-cache", str(tmp_path / "drv.c")]) == 2
    assert "the current directory does not exist any more" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="no such file names")
def test_control_characters_in_a_file_name_are_escaped_in_text(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A name that clears the terminal's line, and one whose line break starts a line that
    # GitHub Actions would run as a workflow command.
    names = ["a\x1b[2K.c", "b\n::error file=x::forged.c"]
    for name in names:
        (tmp_path / name).write_text(BAD)
    assert main(["check", "--no-cache", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and not any(line.startswith("::") for line in out.splitlines())
    assert "a\\x1b[2K.c:4:5: DDI401" in out and "b\\x0a::error file=x::forged.c:4:5:" in out
    assert main(["check", "--no-cache", "--format", "json", str(tmp_path)]) == 1
    assert [Path(f["path"]).name for f in json.loads(capsys.readouterr().out)] == names
    assert main(["roles", str(tmp_path)]) == 0  # its text, too
    out = capsys.readouterr().out
    assert "\x1b" not in out and "a\\x1b[2K.c:2: F:" in out


def test_console_script_runs_the_example() -> None:
    exe = Path(sys.executable).with_name("ddilint")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "ddilint"]
    proc = subprocess.run([*cmd, "check", "examples/"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "DDI401" in proc.stdout


SPIN_LOCK_OVER_HELPERS = """#include <ntddk.h>
KSPIN_LOCK Lock;
VOID Refresh(PUNICODE_STRING path, PUNICODE_STRING name, PVOID buffer, ULONG size)
{
    HANDLE key;
    OBJECT_ATTRIBUTES oa;
    ULONG length;
    InitializeObjectAttributes(&oa, path, OBJ_KERNEL_HANDLE, NULL, NULL);
    if (!NT_SUCCESS(ZwOpenKey(&key, KEY_READ, &oa))) {
        return;
    }
    if (NT_SUCCESS(ZwQueryValueKey(key, name, KeyValuePartialInformation, buffer, size,
                                   &length))) {
        ZwFlushKey(key);
    }
    ZwDeleteKey(key);
    ZwClose(key);
}
VOID OnTick(PUNICODE_STRING path, PUNICODE_STRING name, PVOID buffer)
{
    KIRQL old;
    KeAcquireSpinLock(&Lock, &old);
    Refresh(path, name, buffer, 64);
    KeReleaseSpinLock(&Lock, old);
}
"""


def test_text_output_names_a_cause_many_findings_share(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # One spin lock above a helper that makes five calls allowed only at PASSIVE_LEVEL:
    # five findings, and one line on stderr that says where they all come from.
    (tmp_path / "tick.c").write_text(SPIN_LOCK_OVER_HELPERS)
    assert main(["check", "--no-cache", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert sum(" DDI301 " in line for line in captured.out.splitlines()) == 5
    assert captured.err.splitlines() == [
        "ddilint: 5 DDI301 findings have one cause: KeAcquireSpinLock raises to "
        "DISPATCH_LEVEL in OnTick (tick.c:22)"]
    # Not in the machine formats, not with --quiet.
    assert main(["check", "--no-cache", "-q", str(tmp_path)]) == 1
    assert capsys.readouterr().err == ""
    assert main(["check", "--no-cache", "--format", "json", str(tmp_path)]) == 1
    assert capsys.readouterr().err == ""


def test_shared_causes_counts_per_first_step() -> None:
    from ddilint.findings import Finding, Location, Severity, TraceStep
    from ddilint.report.text import shared_causes

    def f(code: str, cause_line: int, at: int) -> Finding:
        step = TraceStep(Location("d/a.c", cause_line, 1), f"X raises in F{cause_line}")
        return Finding(code, "n", Severity.ERROR, "m", Location("d/b.c", at, 1), (step,))

    many = [f("DDI301", 7, n) for n in range(6)] + [f("DDI301", 9, n) for n in range(4)]
    assert shared_causes(many) == ["6 DDI301 findings have one cause: X raises in F7 (a.c:7)"]
    # Another rule's first step is no cause (a leak's is the open).
    assert shared_causes([f("DDI201", 7, n) for n in range(9)]) == []

"""The progress bar appears on a real terminal only; --quiet and --statistics."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from ddilint.cli import main

BAD = "#include <ntddk.h>\nVOID F(HANDLE h)\n{\n    NtFlushKey(h);\n}\n"


def _cmd() -> list[str]:
    exe = Path(sys.executable).with_name("ddilint")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ddilint"]


@pytest.fixture()
def many(tmp_path: Path) -> Path:
    for i in range(40):
        (tmp_path / f"f{i:02d}.c").write_text(BAD)
    return tmp_path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_ACTIONS")}
    env["DDILINT_PROGRESS_DELAY"] = "0"  # show it at once instead of after a second
    env["TERM"] = "xterm"
    return env


def test_progress_bar_on_a_terminal_only(many: Path) -> None:
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([*_cmd(), "check", str(many)], stdout=subprocess.PIPE,
                              stderr=slave, env=_env(), timeout=120)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    tty_err = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 1
    assert "ddilint" in tty_err and "/40" in tty_err and "\x1b[" in tty_err
    assert proc.stdout.decode().count("DDI401") == 40  # findings untouched on stdout
    # the same run in a pipe: no bar at all
    piped = subprocess.run([*_cmd(), "check", str(many)], capture_output=True, text=True,
                           env=_env(), timeout=120)
    assert piped.stderr == "" and piped.stdout.count("DDI401") == 40
    # --quiet on a terminal: no bar either
    master, slave = pty.openpty()
    subprocess.run([*_cmd(), "check", "--quiet", str(many)], stdout=subprocess.PIPE,
                   stderr=slave, env=_env(), timeout=120)
    os.close(slave)
    try:
        quiet_err = os.read(master, 65536)
    except OSError:
        quiet_err = b""
    os.close(master)
    assert quiet_err == b""


def test_statistics_and_quiet_fix(many: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--statistics", str(many)]) == 1
    err = capsys.readouterr().err
    assert "    40  DDI401 nt-routine-in-kernel-mode" in err and "40 files in" in err
    assert main(["check", "--fix", "--quiet", str(many)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""

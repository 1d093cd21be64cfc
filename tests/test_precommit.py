"""The real pre-commit framework runs the hook of .pre-commit-hooks.yaml against a temporary
git repository, and --project keeps the whole project in view while reporting only on the
files passed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ddilint.cli import main
from tests.conftest import ROOT

BAD = "#include <ntddk.h>\nVOID F(HANDLE h)\n{\n    NtClose(h);\n}\n"
GOOD = "#include <ntddk.h>\nVOID G(HANDLE h)\n{\n    ZwClose(h);\n}\n"
OTHER_BAD = "#include <ntddk.h>\nVOID H(HANDLE h)\n{\n    NtClose(h);\n}\n"
# Whole-program: a DPC in dpc.c calls a helper in helper.c that needs PASSIVE_LEVEL.
DPC = """#include <ntddk.h>
NTSTATUS CacheToken(PVOID Context);

static VOID OnDpc(PKDPC Dpc, PVOID Context, PVOID Arg1, PVOID Arg2)
{
    UNREFERENCED_PARAMETER(Dpc);
    UNREFERENCED_PARAMETER(Arg1);
    UNREFERENCED_PARAMETER(Arg2);
    CacheToken(Context);
}

VOID SetupDpc(PKDPC Dpc, PVOID Ext)
{
    KeInitializeDpc(Dpc, OnDpc, Ext);
}
"""
HELPER = """#include <ntddk.h>
NTSTATUS CacheToken(PVOID Context)
{
    HANDLE token;
    NTSTATUS status = ZwOpenProcessTokenEx(ZwCurrentProcess(), TOKEN_QUERY,
                                           OBJ_KERNEL_HANDLE, &token);
    if (NT_SUCCESS(status)) {
        *(PHANDLE)Context = token;
    }
    return status;
}
"""


def _precommit() -> list[str]:
    exe = Path(sys.executable).with_name("pre-commit")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("pre-commit")
    return [found] if found else [sys.executable, "-m", "pre_commit"]


def _git(repo: Path, *args: str) -> None:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture()
def driver_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "driver"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "bad.c").write_text(BAD)
    (repo / "src" / "good.c").write_text(GOOD)
    (repo / "src" / "other.c").write_text(OTHER_BAD)  # committed already, not changed
    (repo / "README.txt").write_text("not C\n")
    (repo / "src" / "dpc.c").write_text(DPC)
    (repo / "src" / "helper.c").write_text(HELPER)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "dev@example.invalid")
    _git(repo, "config", "user.name", "dev")
    _git(repo, "add", "-A")
    return repo


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("CI", None)
    # The hook's install would compile the engine (setup.py) for three minutes; the
    # compiled build has its own test (test_compiled.py).
    env["DDILINT_PURE_PYTHON"] = "1"
    return env


def _hook_repo(tmp_path: Path) -> Path:
    """A clean git copy of this checkout's tracked files (try-repo needs a git repo; the
    working checkout may have uncommitted changes)."""
    dest = tmp_path / "ddilint-src"
    if dest.exists():
        return dest
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True, timeout=60).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(dest, "-c", "user.email=ci@example.invalid", "-c", "user.name=ci", "commit", "-qm",
         "snapshot")
    return dest


def _try_repo(hook: str, driver_repo: Path, tmp_path: Path, timeout: int,
              files: tuple[str, ...] = ("src/bad.c", "src/good.c", "README.txt")) -> (
        subprocess.CompletedProcess[str]):
    return subprocess.run(
        [*_precommit(), "try-repo", str(_hook_repo(tmp_path)), hook, "--files", *files],
        cwd=driver_repo, env=_env(tmp_path), capture_output=True, text=True, timeout=timeout)


def test_precommit_try_repo_fails_on_the_bad_file(driver_repo: Path, tmp_path: Path) -> None:
    proc = _try_repo("ddilint", driver_repo, tmp_path, 300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "ddilint" in out and "Failed" in out
    assert "src/bad.c:4:5: DDI401 [nt-routine-in-kernel-mode] NtClose" in out
    assert "other.c" not in out and "good.c:" not in out  # only the files passed
    assert "helper.c" not in out
    # fixed: the hook passes
    (driver_repo / "src" / "bad.c").write_text(GOOD)
    proc = _try_repo("ddilint", driver_repo, tmp_path, 300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Passed" in proc.stdout


def test_precommit_changed_helper_keeps_whole_program_context(driver_repo: Path,
                                                              tmp_path: Path) -> None:
    # only helper.c changed: the DPC that makes it run at DISPATCH_LEVEL is in dpc.c
    proc = _try_repo("ddilint", driver_repo, tmp_path, 300, files=("src/helper.c",))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert ("src/helper.c:5:23: DDI301 [irql-too-high] ZwOpenProcessTokenEx may be called at "
            "IRQL <= PASSIVE_LEVEL but can run at DISPATCH_LEVEL here") in out
    assert "OnDpc is a DPC" in out
    reported = [line.split(":")[0] for line in out.splitlines()
                if re.match(r"\S+:\d+:\d+: DDI\d+", line)]
    assert reported == ["src/helper.c"]  # bad.c is not among the files passed


def test_precommit_python_hook_installs_itself(driver_repo: Path, tmp_path: Path) -> None:
    # pre-commit builds the hook's environment from the package registry, as it would for a
    # user (CI reaches the registry: it installs ddilint's own dependencies the same way).
    env_path = os.environ["PATH"]
    proc = _try_repo("ddilint-python", driver_repo, tmp_path, 600)
    assert os.environ["PATH"] == env_path
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "src/bad.c:4:5: DDI401" in proc.stdout


def test_project_mode_analyzes_the_project_reports_the_files(
        driver_repo: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    (driver_repo / "src" / "deep").mkdir()
    (driver_repo / "src" / "deep" / "x.c").write_text(GOOD)
    (driver_repo / ".ddilint.toml").write_text('exclude = ["src/deep/**"]\n')
    monkeypatch.chdir(driver_repo / "src")
    assert main(["check", "--project", "--statistics", "bad.c"]) == 1
    captured = capsys.readouterr()
    assert [line.split(":")[0] for line in captured.out.splitlines()] == ["bad.c"]
    # the project is bad.c, good.c, other.c, dpc.c, helper.c (src/deep excluded by the
    # config at the root)
    assert "5 files in" in captured.err
    assert main(["check", "--statistics", "bad.c"]) == 1  # without --project: the file alone
    assert "1 files in" in capsys.readouterr().err
    # whole-program facts from the other files: only with --project
    assert main(["check", "helper.c"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["check", "--project", "helper.c"]) == 1
    assert capsys.readouterr().out.startswith("helper.c:5:23: DDI301")
    assert main(["check", "--project", str(driver_repo / "src" / "helper.c")]) == 1
    assert capsys.readouterr().out.startswith(f"{(driver_repo / 'src' / 'helper.c').as_posix()}"
                                              ":5:23: DDI301")


def test_project_names_are_what_abspath_and_relpath_give(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # --project names every file of the project once: relative to the working directory
    # when the files passed are relative, else absolute. The folder part is worked out once
    # per folder; the names must be those of the plain per-file computation.
    from ddilint.cli import _project_naming

    work = tmp_path / "repo" / "src"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    paths = ["a.c", "deep/b.c", "./deep/c.c", "../inc/d.h", "../../repo/src/e.c",
             str(tmp_path / "repo" / "x" / ".." / "f.c"), str(tmp_path / "g.c"), "/h.c"]
    for relative in (True, False):
        name = _project_naming(relative)
        for raw in paths:
            full = os.path.abspath(raw)
            want = Path(os.path.relpath(full)) if relative else Path(full)
            assert name(Path(raw)) == want, (raw, relative)
            assert name(Path(raw)) == want  # the folder remembered gives the same

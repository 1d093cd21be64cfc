"""Worker processes (`-j`) and the result cache: same findings, fewer seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ddilint.analyzer.engine import Options, discover, run
from ddilint.cache import ResultCache, run_salt
from ddilint.cli import main
from ddilint.knowledge import Knowledge
from ddilint.rules.base import Rule

KERNEL = "#include <ntddk.h>\n"
DISPATCH = KERNEL + """
DRIVER_DISPATCH DispatchCreate;
NTSTATUS DispatchCreate(PDEVICE_OBJECT d, PIRP irp)
{
    HANDLE h;
    NtClose(g_handle);
    Helper%d();
    return STATUS_SUCCESS;
}
"""
HELPER = KERNEL + """
KSPIN_LOCK g_lock;
VOID Helper%d(void)
{
    KIRQL old;
    KeAcquireSpinLock(&g_lock, &old);
    ZwClose(g_other);
    KeReleaseSpinLock(&g_lock, old);
}
"""


@pytest.fixture()
def driver(tmp_path: Path) -> Path:
    root = tmp_path / "drv"
    root.mkdir()
    for i in range(6):
        (root / f"dispatch{i}.c").write_text(DISPATCH % i)
        (root / f"helper{i}.c").write_text(HELPER % i)
    (root / "binary.c").write_bytes(b"\x7fELF" + bytes(3000))
    return root


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[dict[str, object]]:
    main(argv)
    out: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return out


def test_jobs_do_not_change_the_output(driver: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    base = ["check", "--format", "json", "--no-cache", "-q", str(driver)]
    serial = _json(capsys, [*base, "-j", "1"])
    parallel = _json(capsys, [*base, "-j", "3"])
    assert serial == parallel
    codes = sorted({str(f["code"]) for f in serial})
    assert "DDI401" in codes and "DDI902" in codes
    assert sum(f["code"] == "DDI401" for f in serial) == 6


def test_parallel_run_reports_its_workers(driver: Path, builtin_rules: list[Rule],
                                          knowledge: Knowledge) -> None:
    files, _ = discover([driver])
    serial = run(files, builtin_rules, knowledge, jobs=1)
    parallel = run(files, builtin_rules, knowledge, jobs=2)
    assert (serial.jobs, parallel.jobs) == (1, 2)
    assert serial.findings == parallel.findings
    assert serial.analyzed == parallel.analyzed == 12


def test_warm_run_reuses_every_result(driver: Path, tmp_path: Path,
                                      builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    files, _ = discover([driver])
    options = Options()
    salt = run_salt(builtin_rules, knowledge, options)

    def once(jobs: int) -> tuple[list[object], int]:
        cache = ResultCache(tmp_path / "cache", salt)
        try:
            res = run(files, builtin_rules, knowledge, options, jobs=jobs, cache=cache)
        finally:
            cache.close()
        return list(res.findings), res.cache_hits

    cold, cold_hits = once(2)
    warm, warm_hits = once(1)
    assert cold_hits == 0 and warm_hits == len(files)
    assert warm == cold
    # One changed file: its summary is new, the others come from the cache, and the
    # findings follow the edit.
    (driver / "dispatch0.c").write_text((DISPATCH % 0).replace("NtClose", "ZwClose"))
    edited, _hits = once(2)
    assert len([f for f in edited if getattr(f, "code", "") == "DDI401"]) == 5


def test_cache_on_the_command_line(driver: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "c"
    argv = ["check", "--format", "json", "-q", "--cache-dir", str(cache), str(driver)]
    first = _json(capsys, argv)
    assert (cache / "results.sqlite").is_file() and (cache / ".gitignore").is_file()
    assert _json(capsys, argv) == first
    nothing = tmp_path / "none"
    assert _json(capsys, [*argv, "--no-cache", "--cache-dir", str(nothing)]) == first
    assert not nothing.exists()


def test_a_broken_cache_is_a_warning(driver: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "c"
    cache.mkdir()
    (cache / "results.sqlite").write_bytes(b"this is not a database" * 100)
    main(["check", "--format", "json", "-q", "--cache-dir", str(cache), str(driver)])
    captured = capsys.readouterr()
    assert "result cache off" in captured.err
    assert any(f["code"] == "DDI401" for f in json.loads(captured.out))


def test_salt_follows_rules_and_options(builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    a = run_salt(builtin_rules, knowledge, Options())
    assert a == run_salt(builtin_rules, knowledge, Options(debug=True, file_timeout=3))
    assert a != run_salt(builtin_rules[:1], knowledge, Options())
    assert a != run_salt(builtin_rules, knowledge, Options(mode_override="user"))

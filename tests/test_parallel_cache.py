"""Worker processes (`-j`) and the result cache: same findings, fewer seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ddilint.analyzer import engine, parallel
from ddilint.analyzer.engine import Options, discover, run, summarize_bytes
from ddilint.cache import RACY_NS, ResultCache, run_salt, stat_key
from ddilint.cli import main
from ddilint.findings import Finding, Severity
from ddilint.knowledge import Knowledge, load_knowledge
from ddilint.rules.base import FileContext, Rule

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


def test_a_file_edited_during_the_run_is_not_cached(
        tmp_path: Path, builtin_rules: list[Rule], knowledge: Knowledge,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The run hashes a file, then the editor saves it before the analysis reads it: the
    # results are of the new text, and must not be kept under the old text's hash.
    src = tmp_path / "d.c"
    old = "#include <ntddk.h>\nVOID F(HANDLE h) { NtClose(h); }\n"
    src.write_text("VOID G(VOID) { }\n")
    options = Options()
    salt = run_salt(builtin_rules, knowledge, options)
    real = engine.read_and_facts

    def save_then_read(name: str, *args: object) -> object:
        src.write_text(old.replace("NtClose", "ZwClose"))
        return real(name, *args)  # type: ignore[arg-type]

    def once() -> list[str]:
        cache = ResultCache(tmp_path / "cache", salt)
        try:
            res = run([src], builtin_rules, knowledge, options, cache=cache)
        finally:
            cache.close()
        return [f.code for f in res.findings if not f.is_notice]

    # A first run, so that the cache knows the file and the next one hashes it up front
    # (a first run hashes each file as it reads it: see the next test).
    assert once() == []
    src.write_text(old)
    monkeypatch.setattr(engine, "read_and_facts", save_then_read)
    assert once() == []  # what was read: ZwClose
    monkeypatch.setattr(engine, "read_and_facts", real)
    src.write_text(old)  # back to the text that was hashed
    assert once() == ["DDI401"]


def test_a_first_run_keys_each_file_by_the_bytes_it_analyzed(
        tmp_path: Path, builtin_rules: list[Rule], knowledge: Knowledge,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # An empty cache: no file is hashed up front. The editor saves the file after the run
    # looked at it (`stat`) and before the analysis reads it: the results are of the
    # bytes read and kept under their hash, and the remembered `stat` is the older one,
    # so the next run hashes the file again rather than trust it.
    src = tmp_path / "d.c"
    old = "#include <ntddk.h>\nVOID F(HANDLE h) { NtClose(h); }\n"
    src.write_text(old)
    _age(src)
    options = Options()
    salt = run_salt(builtin_rules, knowledge, options)
    real_read, real_hash = engine.read_and_facts, engine.content_hash
    hashed: list[int] = []

    def save_then_read(name: str, *args: object) -> object:
        src.write_text(old.replace("NtClose", "ZwClose"))
        return real_read(name, *args)  # type: ignore[arg-type]

    def counting(raw: bytes) -> str:
        hashed.append(len(raw))
        return real_hash(raw)

    def once() -> tuple[list[str], int]:
        cache = ResultCache(tmp_path / "cache", salt)
        try:
            res = run([src], builtin_rules, knowledge, options, cache=cache)
        finally:
            cache.close()
        return [f.code for f in res.findings if not f.is_notice], res.cache_hits

    monkeypatch.setattr(engine, "content_hash", counting)
    monkeypatch.setattr(engine, "read_and_facts", save_then_read)
    assert once() == ([], 0)  # what was read: ZwClose
    assert len(hashed) == 1
    monkeypatch.setattr(engine, "read_and_facts", real_read)
    hashed.clear()
    assert once() == ([], 1)  # hashed again (its `stat` changed), then found
    assert len(hashed) == 1
    src.write_text(old)
    assert once() == (["DDI401"], 0)


def test_a_project_run_reuses_the_facts_of_a_full_run(
        driver: Path, tmp_path: Path, builtin_rules: list[Rule], knowledge: Knowledge,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # `ddilint check` filled the cache; then a pre-commit run reports one edited file:
    # only that file is read and analyzed, the others feed the model from the cache.
    files, _ = discover([driver])
    options = Options()
    salt = run_salt(builtin_rules, knowledge, options)

    def once(report: set[str] | None) -> None:
        cache = ResultCache(tmp_path / "cache", salt)
        try:
            run(files, builtin_rules, knowledge, options, cache=cache, report=report)
        finally:
            cache.close()

    once(None)
    edited = driver / "dispatch0.c"
    edited.write_text(edited.read_text() + "\n")
    analyzed: list[str] = []
    real = engine.read_and_facts

    def counting(name: str, *args: object) -> object:
        analyzed.append(name)
        return real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "read_and_facts", counting)
    once({edited.as_posix()})
    assert analyzed == [edited.as_posix()]


def _age(path: Path, seconds: int = 60) -> None:
    """Make a file look last modified `seconds` ago (older than the racy window)."""
    then = path.stat().st_mtime_ns - seconds * 1_000_000_000
    os.utime(path, ns=(then, then))


def test_an_unchanged_file_is_not_hashed_again(
        driver: Path, tmp_path: Path, builtin_rules: list[Rule], knowledge: Knowledge,
        monkeypatch: pytest.MonkeyPatch) -> None:
    files, _ = discover([driver])
    for f in files:
        _age(f)
    options = Options()
    salt = run_salt(builtin_rules, knowledge, options)
    hashed: list[int] = []
    real = engine.content_hash

    def counting(raw: bytes) -> str:
        hashed.append(len(raw))
        return real(raw)

    def once() -> list[object]:
        cache = ResultCache(tmp_path / "cache", salt)
        try:
            return list(run(files, builtin_rules, knowledge, options, cache=cache).findings)
        finally:
            cache.close()

    monkeypatch.setattr(engine, "content_hash", counting)
    first = once()
    # A first run (nothing remembered) reads each file once: the analysis hashes the bytes
    # it reads, and they are the file's key.
    assert len(hashed) == len(files)
    hashed.clear()
    assert once() == first
    assert hashed == []  # stat says unchanged: the remembered hashes, no file read
    # Same size, same modification time put back: the change time still tells.
    edited = driver / "dispatch0.c"
    before = edited.stat()
    edited.write_text(edited.read_text().replace("NtClose", "ZwClose"))
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert edited.stat().st_size == before.st_size
    after = once()
    assert 1 <= len(hashed) <= 2 and len(after) == len(first) - 1


def test_a_hash_taken_right_after_a_write_is_not_trusted(tmp_path: Path) -> None:
    # Written and hashed within the same clock tick, a file could be written again unseen
    # by `stat`: such a remembered hash is checked against the bytes next time.
    src = tmp_path / "a.c"
    src.write_text("VOID F(VOID) { }\n")
    _age(src)
    st = src.stat()
    cache = ResultCache(tmp_path / "cache", "salt")
    name = src.as_posix()
    real = engine.content_hash(src.read_bytes())
    try:
        cache.remember_digests([(name, stat_key(st), "0" * 32, st.st_mtime_ns + 10**6)])
        assert engine.file_digests([name], cache)[2] == {name: real}
        cache.remember_digests([(name, stat_key(st), "0" * 32, st.st_mtime_ns + RACY_NS + 1)])
        assert engine.file_digests([name], cache)[2] == {name: "0" * 32}
    finally:
        cache.close()


def test_entries_in_use_stay_and_unused_ones_go(tmp_path: Path) -> None:
    """An entry (a result, a remembered hash) that every run uses is kept however many
    runs there are, though its stamp is renewed only now and then; one that no run uses
    goes after a few runs."""
    where = tmp_path / "cache"
    st = (10, 1, 1, 1)
    cache = ResultCache(where, "salt")
    cache.put_many([("used", 1), ("unused", 2)])
    cache.remember_digests([("used.c", st, "a" * 32, 0), ("unused.c", st, "b" * 32, 0)])
    cache.close()
    for _ in range(20):
        cache = ResultCache(where, "salt")
        assert cache.get_many(["used"]) == {"used": 1}
        assert cache.known_digests(["used.c"]) == {"used.c": (st, "a" * 32, 0)}
        cache.close()
    cache = ResultCache(where, "salt")
    assert cache.get_many(["used", "unused"]) == {"used": 1}
    assert set(cache.known_digests(["used.c", "unused.c"])) == {"used.c"}
    cache.close()
    # Left alone for a few runs, the entry used last is still there...
    for _ in range(4):
        ResultCache(where, "salt").close()
    cache = ResultCache(where, "salt")
    assert cache.get_many(["used"]) == {"used": 1}
    cache.close()
    # ...and gone once the runs that did not use it are many.
    for _ in range(12):
        ResultCache(where, "salt").close()
    cache = ResultCache(where, "salt")
    assert cache.get_many(["used"]) == {}
    assert cache.known_digests(["used.c"]) == {}
    cache.close()


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


def test_a_broken_cache_is_a_warning_and_a_new_one_starts(
        driver: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "c"
    cache.mkdir()
    (cache / "results.sqlite").write_bytes(b"this is not a database" * 100)
    argv = ["check", "--format", "json", "-q", "--cache-dir", str(cache), str(driver)]
    main(argv)
    captured = capsys.readouterr()
    assert "result cache unreadable (file is not a database); starting a new one" in captured.err
    assert any(f["code"] == "DDI401" for f in json.loads(captured.out))
    main(argv)  # before, the cache stayed off in every run from then on
    again = capsys.readouterr()
    assert "cache" not in again.err and again.out == captured.out
    assert ResultCache(cache, "salt").enabled


def test_a_cache_found_damaged_mid_run_is_replaced_by_the_next(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str],
                                                               ) -> None:
    cache = ResultCache(tmp_path, "salt")
    cache.put_many([("k", b"x" * 200_000)])
    cache.close()
    # The value's overflow pages destroyed, the tables' own pages kept: SQLite opens the
    # file, and finds it malformed when it reads the value.
    db = tmp_path / "results.sqlite"
    raw = db.read_bytes()
    keep = 8 * 4096
    assert len(raw) > 2 * keep
    db.write_bytes(raw[:keep] + b"\xff" * (len(raw) - keep))
    cache = ResultCache(tmp_path, "salt")
    assert cache.enabled
    assert cache.get_many(["k"]) == {}
    assert not cache.enabled
    assert "a new one starts with the next run" in capsys.readouterr().err
    cache = ResultCache(tmp_path, "salt")
    assert cache.enabled and cache.get_many(["k"]) == {}
    cache.put_many([("k", 2)])
    assert cache.get_many(["k"]) == {"k": 2}
    cache.close()


def test_salt_follows_rules_and_options(builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    a = run_salt(builtin_rules, knowledge, Options())
    assert a == run_salt(builtin_rules, knowledge, Options(debug=True, file_timeout=3))
    assert a != run_salt(builtin_rules[:1], knowledge, Options())
    assert a != run_salt(builtin_rules, knowledge, Options(mode_override="user"))


def test_salt_follows_the_knowledge(builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    # The shipped table is keyed by what it was built from; a config's routine entry, or a
    # table built by hand (no fingerprint: its routines are hashed), changes every key.
    assert knowledge.fingerprint
    a = run_salt(builtin_rules, knowledge, Options())
    assert a == run_salt(builtin_rules, load_knowledge(), Options())
    extra = {"MyOpen": {"handle_out_param": 0}}
    mine = load_knowledge(extra)
    assert mine.fingerprint not in ("", knowledge.fingerprint)
    assert mine.fingerprint == load_knowledge(extra).fingerprint
    assert a != run_salt(builtin_rules, mine, Options())
    by_hand = replace(knowledge, fingerprint="")
    assert run_salt(builtin_rules, by_hand, Options()) not in (
        a, run_salt(builtin_rules, replace(mine, fingerprint=""), Options()))


# -- determinism: the same bytes, the same output, however the run was split -----------------
# A completion routine calls its packet's `Done` callback; six routines are stored into that
# field, each finishing through one helper that opens a file (PASSIVE_LEVEL only). Every
# callback is an equally good way in at DISPATCH_LEVEL, so the DDI301 trace names the first
# one in the sources. tree-sitter hands a query's captures back in an order that changes from
# one parse of the same bytes to the next, and the model used to inherit it: the chosen
# callback then depended on what else the process had parsed or kept in memory (-j, the
# 64 MB of parsed files kept between the phases, the cache).
PACKET_H = KERNEL + """
typedef struct _PACKET *PPACKET;
typedef VOID PACKET_DONE(PPACKET Packet);
typedef struct _PACKET {
    PACKET_DONE *Done;
    PIRP Irp;
} PACKET;
VOID FinishPacket(PPACKET Packet);
"""
DONE = """#include "packet.h"
VOID %sDone(PPACKET Packet)
{
    FinishPacket(Packet);
}
"""
KINDS = ("Read", "Write", "Flush", "Query", "Reset", "Lock")
_CASES = "".join(f"    case {i}: Packet->Done = {k}Done; break;\n" for i, k in enumerate(KINDS))
SETUP = f"""#include "packet.h"
PACKET_DONE {", ".join(k + "Done" for k in KINDS)};
VOID SetupPacket(PPACKET Packet, ULONG Kind)
{{
    switch (Kind) {{
{_CASES}    }}
}}
"""
FINISH = """#include "packet.h"
VOID FinishPacket(PPACKET Packet)
{
    HANDLE file;
    OBJECT_ATTRIBUTES attributes;
    IO_STATUS_BLOCK io;
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\\\SystemRoot\\\\log.txt");
    InitializeObjectAttributes(&attributes, &name, OBJ_KERNEL_HANDLE, NULL, NULL);
    if (NT_SUCCESS(ZwCreateFile(&file, GENERIC_WRITE, &attributes, &io, NULL, 0, 0,
                                FILE_OPEN_IF, FILE_SYNCHRONOUS_IO_NONALERT, NULL, 0))) {
        ZwClose(file);
    }
    UNREFERENCED_PARAMETER(Packet);
}
"""
QUEUE = """#include "packet.h"
IO_COMPLETION_ROUTINE PacketComplete;
NTSTATUS PacketComplete(PDEVICE_OBJECT Device, PIRP Irp, PVOID Context)
{
    PPACKET packet = (PPACKET)Context;
    UNREFERENCED_PARAMETER(Device);
    UNREFERENCED_PARAMETER(Irp);
    packet->Done(packet);
    return STATUS_MORE_PROCESSING_REQUIRED;
}
"""


@pytest.fixture()
def callbacks(tmp_path: Path) -> Path:
    root = tmp_path / "packets"
    root.mkdir()
    (root / "packet.h").write_text(PACKET_H)
    for kind in KINDS:
        (root / f"done_{kind.lower()}.c").write_text(DONE % kind)
    (root / "setup.c").write_text(SETUP)
    (root / "finish.c").write_text(FINISH)
    # Sorted after the callbacks: they are visited before their caller raises them.
    (root / "queue.c").write_text(QUEUE)
    return root


def test_parsed_facts_come_in_source_order(callbacks: Path, knowledge: Knowledge) -> None:
    raw = (callbacks / "setup.c").read_bytes()
    name = (callbacks / "setup.c").as_posix()
    alive = []  # earlier parses stay in memory, as the kept files of a run do
    orders = set()
    for _ in range(12):
        summary, fir, _notes = summarize_bytes(name, raw, knowledge, Options())
        assert summary is not None and fir is not None
        alive.append(fir)
        offsets = tuple(r.ref.offset for r in summary.refs)
        assert list(offsets) == sorted(offsets)
        orders.add((offsets, tuple(d.function for d in summary.role_decls)))
    assert len(orders) == 1
    targets = [r.ref.name for r in summary.refs if r.ref.kind == "field"]
    assert targets == [k + "Done" for k in KINDS]


def test_output_does_not_depend_on_how_the_run_was_split(
        callbacks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    base = ["check", "--format", "json", "-q", str(callbacks)]
    outputs: dict[str, str] = {}

    def text(label: str, argv: list[str]) -> None:
        main(argv)
        outputs[label] = capsys.readouterr().out

    for batch in (parallel.BATCH_FILES, 1):
        monkeypatch.setattr(parallel, "BATCH_FILES", batch)
        for jobs in ("1", "2"):
            for _ in range(2):
                text(f"batch={batch} -j {jobs}", [*base, "--no-cache", "-j", jobs])
    cache = str(tmp_path / "cache")
    text("cache cold", [*base, "--cache-dir", cache, "-j", "2"])
    (callbacks / "finish.c").write_text(FINISH + "\n")  # summaries cached, findings fresh
    text("cache, one file changed", [*base, "--cache-dir", cache, "-j", "1"])
    (callbacks / "finish.c").write_text(FINISH)
    text("cache warm", [*base, "--cache-dir", cache, "-j", "1"])
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        for jobs in ("1", "2"):
            proc = subprocess.run([sys.executable, "-m", "ddilint", *base, "--no-cache",
                                   "-j", jobs], capture_output=True, text=True, env=env,
                                  check=False)
            outputs[f"PYTHONHASHSEED={seed} -j {jobs}"] = proc.stdout
    first = next(iter(outputs.values()))
    assert {label: out == first for label, out in outputs.items()} == {
        label: True for label in outputs}
    findings = json.loads(first)
    irql = [f for f in findings if f["code"] == "DDI301"]
    assert len(irql) == 2
    for f in irql:
        assert "-> ReadDone (queue.c:8) -> FinishPacket" in f["message"]
        assert "calls ReadDone" in [step["message"] for step in f["trace"]]


def test_a_cached_file_still_takes_the_mode_its_headers_show(
        tmp_path: Path, builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    # The mode of a file that includes only a project header is settled after phase one,
    # from every file's includes: a warm run settles it again, from the cached facts, and
    # an edit of the header alone changes it.
    root = tmp_path / "tool"
    root.mkdir()
    header = root / "precomp.h"
    header.write_text("#include <windows.h>\n")
    (root / "close.c").write_text('#include "precomp.h"\n'
                                  "NTSTATUS CloseIt(HANDLE h) { return NtClose(h); }\n")
    files, _ = discover([root])
    options = Options()
    salt = run_salt(builtin_rules, knowledge, options)

    def once() -> tuple[list[str], int]:
        cache = ResultCache(tmp_path / "cache", salt)
        try:
            res = run(files, builtin_rules, knowledge, options, jobs=1, cache=cache)
        finally:
            cache.close()
        return [f.code for f in res.findings], res.cache_hits

    assert once() == ([], 0)
    assert once() == ([], 2)
    header.write_text("#include <ntddk.h>\n")
    codes, hits = once()
    assert codes == ["DDI401"] and hits == 0


MAIN_PID = os.getpid()


class KillsItsWorker(Rule):
    """A rule that takes down a forked worker on one file, as a crash in a parser would."""

    code, name, severity = "XTEST010", "kills-its-worker", Severity.WARNING

    def check_file(self, ctx: FileContext) -> Iterator[Finding]:
        if ctx.file.path.endswith("boom.c") and os.getpid() != MAIN_PID:
            os._exit(3)
        return iter(())


def test_a_dead_worker_costs_only_the_file_it_was_on(
        driver: Path, builtin_rules: list[Rule], knowledge: Knowledge,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # The largest file goes to the forked worker first (the main process takes its batches
    # after handing out the workers'); with one file per batch the worker holds boom.c and
    # the next file when it dies. That next file, and every other, is analyzed all the same.
    (driver / "boom.c").write_text(DISPATCH % 9 + "/*" + "x" * 20000 + "*/\n")
    files, _ = discover([driver])
    rules = [*builtin_rules, KillsItsWorker()]
    serial = run(files, rules, knowledge, jobs=1)
    monkeypatch.setattr(parallel, "BATCH_FILES", 1)
    dead = run(files, rules, knowledge, jobs=2)
    assert "worker process 0 died" in capsys.readouterr().err
    boom = [f for f in dead.findings if f.location.path.endswith("boom.c")]
    assert [(f.code, f.message) for f in boom] == [
        ("DDI906", "internal error: worker process 0 stopped while it analyzed this file")]
    assert dead.analyzed == serial.analyzed - 1
    assert [f for f in dead.findings if not f.location.path.endswith("boom.c")] == [
        f for f in serial.findings if not f.location.path.endswith("boom.c")]

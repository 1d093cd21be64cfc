"""Hostile input: odd encodings, binary files, half-written files, deep nesting, symlink
loops, slow or failing rules. ddilint must never crash, never hang, and never lose a
finding that sits in a readable part of a file."""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ddilint.analyzer.budget import BudgetExceeded, time_budget
from ddilint.analyzer.dataflow import CHECK_MASK
from ddilint.analyzer.engine import FileResult, Options, analyze_bytes, discover, run
from ddilint.analyzer.frontend import parse_file
from ddilint.analyzer.handles import MAX_HELPER_DEPTH, MAX_STEPS_PER_FILE
from ddilint.analyzer.project import STORY_HEAD, STORY_TAIL
from ddilint.analyzer.source import MAX_FILE_BYTES, SourceText, decode_bytes, read_file
from ddilint.analyzer.values import MAX_REACHING_DEFS, file_values
from ddilint.cache import ResultCache
from ddilint.cli import main
from ddilint.findings import Finding, Severity
from ddilint.fingerprint import SourceCache
from ddilint.knowledge import Knowledge
from ddilint.rules.base import FileContext, Pending, ProjectView, Rule
from tests.exercise import ExerciseRule

# A kernel-mode file with one DDI401 finding on line 4, column 5.
DRIVER = (
    "#include <ntddk.h>\n"
    "VOID Unload(PDRIVER_OBJECT d)\n"
    "{\n"
    "    NtClose(g_handle);\n"
    "}\n"
)


def analyze(raw: bytes, rules: Sequence[Rule], knowledge: Knowledge, path: str = "drv.c",
            options: Options | None = None) -> FileResult:
    return analyze_bytes(path, raw, rules, knowledge, options)


def places(res: FileResult, code: str = "DDI401") -> list[tuple[int, int]]:
    return [(f.location.line, f.location.column) for f in res.findings if f.code == code]


def codes(res: FileResult) -> list[str]:
    return sorted(f.code for f in res.findings)


# ---------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("raw", [
    DRIVER.encode("utf-8"),
    codecs.BOM_UTF8 + DRIVER.encode("utf-8"),
    codecs.BOM_UTF16_LE + DRIVER.encode("utf-16-le"),
    codecs.BOM_UTF16_BE + DRIVER.encode("utf-16-be"),
    DRIVER.encode("utf-16-le"),  # no BOM: recognised by its NUL pattern
    DRIVER.encode("utf-16-be"),
    DRIVER.replace("\n", "\r\n").encode("utf-8"),
    DRIVER.replace("\n", "\r").encode("utf-8"),  # old Mac line endings
    codecs.BOM_UTF16_LE + DRIVER.replace("\n", "\r\n").encode("utf-16-le"),
    codecs.BOM_UTF32_LE + DRIVER.encode("utf-32-le"),  # before: read as UTF-16 full of NULs
    codecs.BOM_UTF32_BE + DRIVER.encode("utf-32-be"),  # before: skipped as binary
], ids=["utf8", "utf8-bom", "utf16le-bom", "utf16be-bom", "utf16le", "utf16be", "crlf", "cr",
        "utf16-crlf", "utf32le-bom", "utf32be-bom"])
def test_every_text_encoding_finds_the_same_place(
        raw: bytes, builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    res = analyze(raw, builtin_rules, knowledge)
    assert res.analyzed
    assert codes(res) == ["DDI401"]
    assert places(res) == [(4, 5)]


def test_a_utf16_file_that_starts_like_a_utf32_bom_stays_utf16() -> None:
    # FF FE 00 00: the UTF-32 LE BOM, or UTF-16 LE's BOM and a NUL. Odd UTF-32 is UTF-16.
    raw = codecs.BOM_UTF16_LE + "\x00int x;\n".encode("utf-16-le")
    decoded = decode_bytes(raw)
    assert (decoded.encoding, decoded.text) == ("utf-16", " int x;\n")
    assert decoded.notice_code == "DDI903"


def test_windows_1252_is_decoded_lossily_with_a_notice(
        builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    raw = ("// Pilote r\xe9seau \xa9 2009\n" + DRIVER).encode("cp1252")
    res = analyze(raw, builtin_rules, knowledge)
    assert codes(res) == ["DDI401", "DDI903"]
    assert places(res) == [(5, 5)]
    note = next(f for f in res.findings if f.code == "DDI903")
    assert "Windows-1252" in note.message and note.severity is Severity.NOTE


def test_invalid_utf8_after_a_bom_gets_a_notice(
        builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    raw = codecs.BOM_UTF8 + b"// \xff\xfe junk\n" + DRIVER.encode()
    res = analyze(raw, builtin_rules, knowledge)
    assert codes(res) == ["DDI401", "DDI903"]
    assert places(res) == [(5, 5)]


def test_broken_utf16_is_decoded_lossily(builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    raw = codecs.BOM_UTF16_LE + DRIVER.encode("utf-16-le") + b"\x00\xd8"  # lone surrogate
    res = analyze(raw, builtin_rules, knowledge)
    assert codes(res) == ["DDI401", "DDI903"]


@pytest.mark.parametrize("raw", [
    b"\x7fELF\x02\x01\x01\x00" + bytes(4000),
    b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 16,
    b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + bytes(range(256)) * 4,
    bytes(range(256)) * 32,
], ids=["elf", "png", "pe", "all-bytes"])
def test_binary_files_are_skipped_with_a_notice(
        raw: bytes, builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    res = analyze(raw, builtin_rules, knowledge)
    assert not res.analyzed
    assert codes(res) == ["DDI902"]


def test_decoding_never_raises_on_short_odd_inputs() -> None:
    for raw in (b"", b"\x00", b"\xff", b"\xfe\xff", b"\xff\xfe\x00", b"\xef\xbb\xbf", b"\r",
                b"\x00" * 7, b"\xff\xfe" + b"\x00\xdc" * 3):
        res = decode_bytes(raw)
        assert res.text is not None or res.notice


# ------------------------------------------------------------- half-written files


@pytest.mark.parametrize("tail", [
    "/* a comment that never ends\nNtClose(h);\n",
    "VOID Half(void) {\n    Foo(\"a string that never ends\n",
    "#if 0\nVOID Dead(void) { NtClose(h); }\n",
    "VOID Half(void) {\n    if (x) {\n        NtClose(\n",
    "VOID Half(void) {\n    " + "{" * 50 + "\n",
    "#define BROKEN(x) NtClose(x\n",
    "\x00\x00garbage after a NUL\x00 NtClose(h);\n",
    "VOID Bad(void) }}}} ))) ;;; NtClose(h); } int\n",
], ids=["comment", "string", "if0", "call", "braces", "define", "nul", "junk"])
def test_a_broken_end_does_not_hide_findings_before_it(
        tail: str, builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    res = analyze((DRIVER + tail).encode(), builtin_rules, knowledge)
    assert res.analyzed
    assert (4, 5) in places(res)
    assert "DDI906" not in codes(res)


def test_quoted_kernel_header_makes_kernel_mode(
        builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    from ddilint.analyzer.preprocess import preprocess

    assert preprocess(b'#include "ntddk.h"\n#include <wdm.h>\n').includes == ["ntddk.h", "wdm.h"]
    quoted = DRIVER.replace("<ntddk.h>", '"ntddk.h"')
    res = analyze(quoted.encode(), builtin_rules, knowledge, options=Options())
    assert places(res) == [(4, 5)]


def test_nul_bytes_are_read_as_spaces_and_code_after_them_is_analyzed(
        builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    raw = DRIVER.encode() + b"\x00\x00\n" + DRIVER.replace("Unload", "Unload2").encode()
    res = analyze(raw, builtin_rules, knowledge)
    assert places(res) == [(4, 5), (10, 5)]
    assert "DDI903" in codes(res)


# ------------------------------------------------------------------------ deep nesting


def _fn(body: str) -> str:
    return "#include <ntddk.h>\nVOID F(void)\n{\n    NtClose(h);\n    " + body + "\n}\n"


DEEP = {
    "parens": _fn("x = " + "(" * 20000 + "1" + ")" * 20000 + ";"),
    "blocks": _fn("{" * 5000 + "NtClose(h);" + "}" * 5000),
    "ifs": _fn("if (a) {" * 5000 + "NtClose(h);" + "}" * 5000),
    "loops": _fn("while (a) {" * 2500 + "for (;;) {" * 2500 + "g();" + "}" * 5000),
    "else-if": _fn("if (a) g(); else " * 5000 + "g();"),
    "seh": _fn("__try {" * 1000 + "g();" + "} __finally { h(); }" * 1000),
    "calls": _fn("x = " + "g(" * 2000 + "1" + ")" * 2000 + ";"),
    "operators": _fn("x = " + "a + " * 20000 + "1;"),
    "conditions": _fn("if (" + "a && " * 10000 + "b) g();"),
    "casts": _fn("x = " + "(T)" * 10000 + "p;"),
    "unary": _fn("x = " + "!*-" * 5000 + "p;"),
    "fields": _fn("x = a" + "->b" * 20000 + ";"),
    "ternary": _fn("x = " + "a ? b : " * 5000 + "c;"),
    "comma": _fn("x = (" + "a, " * 20000 + "c);"),
    "initializers": _fn("int x[] = " + "{" * 5000 + "1" + "}" * 5000 + ";"),
    "declarator": _fn("int " + "*" * 20000 + "p;"),
    "labels": _fn("".join(f"L{i}: if (a) goto L{i + 1};\n" for i in range(3000))),
    "switches": _fn("switch (a) { case 1: " * 2000 + "g();" + "}" * 2000),
    "unbalanced": _fn("(" * 20000),
    "ifdefs": "#if A\n" * 5000 + _fn("g();") + "#endif\n" * 5000,
    "if-expression": "#if " + "(" * 20000 + "1" + ")" * 20000 + "\nint x;\n#endif\n" + _fn(""),
    "annotation": _fn("") + "_In_reads_(" + "(" * 20000 + "\n",
    "nested-macros": "#define M(x) g(x)\n" + _fn("x = " + "M(" * 1000 + "1" + ")" * 1000 + ";"),
    "self-macros": "#define A A(A)\n#define B(x) B(B(x))\n" + _fn("A; B(1);"),
}


@pytest.mark.parametrize("name", sorted(DEEP))
def test_deep_nesting_never_raises(
        name: str, builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    src = DEEP[name]
    limit = sys.getrecursionlimit()
    started = time.perf_counter()
    # The exercise rule builds the engine's lazy layers too (bodies, CFGs, dataflow, call
    # arguments): an exception anywhere would be a DDI906 notice.
    res = analyze(src.encode(), [*builtin_rules, ExerciseRule()], knowledge,
                  options=Options(debug=True))
    assert [f.message for f in res.findings if f.code == "DDI906"] == []
    line = src[: src.index("NtClose")].count("\n") + 1
    assert (line, 5) in places(res)
    assert time.perf_counter() - started < 20
    assert sys.getrecursionlimit() <= max(limit, 5000)


def test_expansion_budget_becomes_a_notice(
        builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    src = "#define M(x) g(x)\n" + _fn("x = " + "M(" * 600 + "1" + ")" * 600 + ";")
    res = analyze(src.encode(), builtin_rules, knowledge)
    notes = [f for f in res.findings if f.code == "DDI905" and "macro expansions" in f.message]
    assert len(notes) == 1 and notes[0].location.line == 6


def test_too_deep_code_becomes_opaque_with_a_notice(
        builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    res = analyze(DEEP["blocks"].encode(), [*builtin_rules, ExerciseRule()], knowledge)
    notes = [f for f in res.findings if f.code == "DDI905"]
    assert len(notes) == 1 and "nested more than 250 levels" in notes[0].message
    assert notes[0].location.line == 5
    shallow = analyze(DRIVER.encode(), [*builtin_rules, ExerciseRule()], knowledge)
    assert codes(shallow) == ["DDI401"]


# ------------------------------------------------------------------ failing and slow rules


class Exploding(Rule):
    code, name, severity = "XTEST001", "exploding", Severity.WARNING

    def check_file(self, ctx: FileContext) -> Iterator[Finding]:
        raise ValueError("the rule fell over")


class Endless(Rule):
    code, name, severity = "XTEST002", "endless", Severity.WARNING

    def check_file(self, ctx: FileContext) -> Iterator[Finding]:
        yield ctx.finding(self, 0, "before the loop")
        n = 0
        while True:  # a rule stuck in a loop, swallowing exceptions as it goes
            try:
                n += 1
            except Exception:
                n = 0


def _generated_chain(n: int) -> str:
    """A generated function: `n` blocks in a row, each storing a status in `status` and a
    handle in `k`, then one plain call whose attributes lack OBJ_KERNEL_HANDLE."""
    blocks = "".join(
        f"    if (which == {i}) {{ status = ZwOpenKey(&k, KEY_READ, &oa); "
        "if (NT_SUCCESS(status)) { ZwClose(k); } }\n" for i in range(n))
    return ("#include <ntifs.h>\n"
            "NTSTATUS Generated(ULONG which, HANDLE Process, PHANDLE Token)\n{\n"
            "    NTSTATUS status = STATUS_SUCCESS;\n"
            "    OBJECT_ATTRIBUTES oa;\n"
            "    HANDLE k;\n"
            "    InitializeObjectAttributes(&oa, NULL, OBJ_KERNEL_HANDLE, NULL, NULL);\n"
            + blocks +
            "    status = ZwOpenProcessTokenEx(Process, TOKEN_QUERY, 0, Token);\n"
            "    return status;\n}\n")


def test_many_definitions_of_one_variable_stop_being_followed_with_one_notice(
        builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    # Every join of the chain reached the one after it with all the definitions of
    # `status` and `k` before it: sets that grew as the square of the function.
    n = MAX_REACHING_DEFS + 100
    fir = parse_file(SourceText("gen.c", _generated_chain(n), "utf-8"))
    fv = file_values(fir, knowledge).function(fir.functions[0])
    sizes = [len(defs) for state in fv.before.values() if state for defs in state.values()]
    assert max(sizes) == MAX_REACHING_DEFS  # the chain reaches the limit, never passes it
    assert set(fv.too_many) == {"status", "k"}
    res = analyze(_generated_chain(n).encode(), builtin_rules, knowledge, path="gen.c")
    notes = [f.message for f in res.findings if f.code == "DDI905"]
    assert notes == [
        # Once, not once a block, and for what it is: the file's limit of steps.
        "handles not checked in Generated from `k` on, and in the functions after it: the "
        f"file took the {MAX_STEPS_PER_FILE:,} steps its handle analysis may take",
        f"values not followed in Generated: `status` has more than {MAX_REACHING_DEFS} "
        "definitions that reach one place",
        f"values not followed in Generated: `k` has more than {MAX_REACHING_DEFS} "
        "definitions that reach one place",
    ]
    # What the limit does not touch is still checked: the call after the chain.
    assert [(f.code, f.location.line) for f in res.findings if f.code != "DDI905"] == [
        ("DDI101", n + 8)]


def test_the_solver_keeps_to_the_time_budget_where_no_timer_interrupts(
        knowledge: Knowledge) -> None:
    # A thread has no interval timer (nor has Windows, nor compiled code before a rule runs
    # Python again): the solver itself looks at the budget as it goes.
    fir = parse_file(SourceText("gen.c", _generated_chain(600), "utf-8"))
    fn = fir.functions[0]
    assert len(fn.cfg.blocks) > 2 * (CHECK_MASK + 1)  # visits enough to look at the budget
    got: list[BaseException | None] = []

    def work() -> None:
        try:
            with time_budget(0.01):
                time.sleep(0.05)
                file_values(fir, knowledge).function(fn)  # solves the reaching definitions
            got.append(None)
        except BudgetExceeded as exc:
            got.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert len(got) == 1 and isinstance(got[0], BudgetExceeded)
    file_values(fir, knowledge).function(fn)  # no budget in force: it runs to the end


def _helper_chain(n: int) -> str:
    """A DPC that hands a handle down `n` helpers, each closing it or passing it on."""
    helpers = "".join(
        f"VOID Pass{i}(HANDLE h) {{ if (h) Pass{i + 1}(h); else ZwClose(h); }}\n"
        for i in range(n))
    return ("#include <ntddk.h>\n"
            f"VOID Pass{n}(HANDLE h) {{ ZwClose(h); }}\n"
            + "".join(f"VOID Pass{i}(HANDLE h);\n" for i in range(n))
            + helpers
            + "VOID Dpc(PKDPC d, PVOID c, PVOID a, PVOID b) { Pass0(c); }\n"
            "VOID Setup(PKDPC d) { KeInitializeDpc(d, Dpc, NULL); }\n")


def test_a_handle_passed_down_a_long_chain_of_helpers_is_followed_so_far(
        builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    # Each helper's effect on the handle was worked out inside its caller's: 1,000 of them
    # ran out of the interpreter's stack (three DDI906 notices), 20,000 took three minutes.
    short = analyze(_helper_chain(MAX_HELPER_DEPTH - 2).encode(), builtin_rules, knowledge)
    assert [f.code for f in short.findings if f.code.startswith("DDI9")] == []
    long = analyze(_helper_chain(3 * MAX_HELPER_DEPTH).encode(), builtin_rules, knowledge)
    assert [f.message for f in long.findings if f.code.startswith("DDI9")] == [
        f"handles not checked in Pass{MAX_HELPER_DEPTH + 1}: a handle passed down more than "
        f"{MAX_HELPER_DEPTH} helpers is not followed"]


def test_a_long_call_chain_is_told_by_its_ends(
        builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    # Every function of the chain runs at DISPATCH_LEVEL and closes a handle: each finding
    # told its whole way from the DPC, and 2,000 of them wrote a 300 MB report.
    n = 40
    res = analyze(_helper_chain(n).encode(), builtin_rules, knowledge)
    irql = [f for f in res.findings if f.code == "DDI301"]
    assert len(irql) == n + 1
    deepest = max(irql, key=lambda f: len(f.trace))
    left_out = n + 1 - STORY_HEAD - STORY_TAIL
    assert f" -> Pass{STORY_HEAD - 2} (" in deepest.message
    assert f" -> ... {left_out} more calls ... -> Pass{n - STORY_TAIL + 1} (" in deepest.message
    assert deepest.message.endswith(f" -> Pass{n} (drv.c:{2 * n + 2})")  # called by Pass{n-1}
    assert len(deepest.trace) == 1 + STORY_HEAD + STORY_TAIL


def test_a_failing_rule_becomes_a_notice_and_the_others_run(
        builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    res = analyze(DRIVER.encode(), [Exploding(), *builtin_rules], knowledge)
    assert codes(res) == ["DDI401", "DDI906"]
    note = next(f for f in res.findings if f.code == "DDI906")
    assert note.location.path == "drv.c"
    assert "XTEST001 exploding" in note.message and "the rule fell over" in note.message
    assert "Traceback" not in note.message
    debug = analyze(DRIVER.encode(), [Exploding()], knowledge, options=Options(debug=True))
    assert "Traceback" in debug.findings[0].message
    assert "check_file" in debug.findings[0].message


class SlowToResolve(Rule):
    code, name, severity = "XTEST003", "slow-to-resolve", Severity.WARNING

    def check_file(self, ctx: FileContext) -> Iterator[Pending]:
        yield ctx.defer(self, finding=ctx.finding(self, 0, "deferred"))

    def resolve(self, pending: Pending, view: ProjectView) -> Iterator[Finding]:
        n = 0
        while True:  # a whole-program part that never ends (a walk over a huge call graph)
            n += 1
        yield from ()


@pytest.mark.parametrize(("slow", "stage"), [
    (Endless(), "running the rules"),
    (SlowToResolve(), "resolving the rules' whole-program parts"),  # phase three
])
def test_a_file_over_its_time_budget_becomes_a_notice(
        builtin_rules: list[Rule], knowledge: Knowledge, slow: Rule, stage: str) -> None:
    started = time.perf_counter()
    res = analyze(DRIVER.encode(), [*builtin_rules, slow], knowledge,
                  options=Options(file_timeout=0.3))
    assert time.perf_counter() - started < 5
    assert codes(res) == ["DDI401", "DDI905"]  # a rule's findings count when it finishes
    note = next(f for f in res.findings if f.code == "DDI905")
    assert "0.3 s" in note.message and stage in note.message
    # The next file is analyzed normally: the alarm is gone.
    again = analyze(DRIVER.encode(), builtin_rules, knowledge, options=Options(file_timeout=0.3))
    time.sleep(0.4)
    assert codes(again) == ["DDI401"]


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no interval timer")
def test_a_budget_inside_another_keeps_the_outer_one() -> None:
    # Phase three may read a file's IR again, within its own budget, inside the file's:
    # the inner budget's timer replaced the outer one's, and when done switched it off.
    with pytest.raises(BudgetExceeded), time_budget(0.3):
        with time_budget(0.05):
            time.sleep(0.01)  # an inner budget that ends well within its time
        time.sleep(2)
    with pytest.raises(BudgetExceeded), time_budget(0.2):
        # The outer budget ends first, and this body swallows it, as `ir_reader` does.
        with contextlib.suppress(BudgetExceeded), time_budget(5):
            time.sleep(2)
        time.sleep(2)  # so it ends again, at once


def test_cli_keeps_going_after_a_bad_file(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.c").write_bytes(b"\x7fELF" + bytes(5000))
    (tmp_path / "b.c").write_text(DRIVER)
    (tmp_path / "c.c").write_bytes(DRIVER.encode("utf-16"))
    assert main(["check", "--format", "json", str(tmp_path)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [(Path(d["path"]).name, d["code"]) for d in data] == [
        ("a.c", "DDI902"), ("b.c", "DDI401"), ("c.c", "DDI401")]


def test_exit_two_only_when_nothing_could_be_analyzed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.c").write_bytes(b"\x7fELF" + bytes(5000))
    assert main(["check", str(tmp_path)]) == 2
    assert "none of the files could be analyzed" in capsys.readouterr().err
    (tmp_path / "b.c").write_text("int x;\n")
    assert main(["check", str(tmp_path)]) == 0  # a notice alone is not a finding
    assert main(["check", str(tmp_path / "empty-dir-that-is-missing")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["check", str(tmp_path / "empty")]) == 0  # nothing to analyze is not an error


# ------------------------------------------------------------------------- file system


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlink_loops_are_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "drv" / "sub").mkdir(parents=True)
    (root / "drv" / "a.c").write_text(DRIVER)
    (root / "drv" / "sub" / "b.c").write_text(DRIVER)
    os.symlink(root / "drv", root / "drv" / "sub" / "loop")  # sub/loop -> drv -> sub -> ...
    os.symlink(root / "drv" / "sub" / "self", root / "drv" / "sub" / "self")  # points at itself
    os.symlink(root / "missing.c", root / "drv" / "dangling.c")
    os.symlink(root / "drv" / "a.c", root / "drv" / "alias.c")
    files, missing = discover([root, root / "drv" / "sub" / "loop"])
    names = [p.as_posix().removeprefix(root.as_posix()) for p in files]
    assert missing == []
    # Each file once, under its first name (alias.c and loop/a.c are a.c).
    assert names == ["/drv/a.c", "/drv/dangling.c", "/drv/sub/b.c"]
    result = run(files, [], _no_knowledge())
    assert result.analyzed == 2
    assert [f.code for f in result.findings] == ["DDI901"]  # the dangling link


def _check_in_a_process(*args: str | Path) -> tuple[int, list[dict[str, object]]]:
    """`ddilint check ARGS --format json` in its own process, which a hang cannot take
    the test suite with: its exit status and findings."""
    proc = subprocess.run([sys.executable, "-m", "ddilint", "check", "--format", "json",
                           *map(str, args)], capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout) if proc.stdout else []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_named_pipe_or_a_device_is_a_notice_and_never_waits(tmp_path: Path) -> None:
    # `open` of a named pipe waits for a writer, and reading /dev/zero never ends: read
    # as sources, either held a run for ever. Each is now a file that cannot be read.
    root = tmp_path / "src"
    root.mkdir()
    (root / "drv.c").write_text(DRIVER)
    os.mkfifo(root / "pipe.c")
    expected = [("drv.c", "DDI401", ""), ("pipe.c", "DDI901", "(a named pipe)")]
    if os.path.exists("/dev/zero"):
        os.symlink("/dev/zero", root / "zero.h")
        expected.append(("zero.h", "DDI901", "(a character device)"))
    cache = tmp_path / "cache"
    for extra in (("--no-cache",), ("--cache-dir", cache), ("--cache-dir", cache, "-j", "2")):
        code, found = _check_in_a_process(root, *extra)
        assert code == 1
        got = [(Path(str(f["path"])).name, f["code"], str(f["message"])) for f in found]
        assert [(n, c) for n, c, _ in got] == [(n, c) for n, c, _ in expected]
        for (_, _, message), (_, _, says) in zip(got, expected, strict=True):
            assert says in message
    # What reads a file outside a run (fingerprints, the editor's project model) reads it
    # as a run does: a thread, so that a wait fails the test rather than holding it.
    answers: list[object] = []

    def ask() -> None:
        answers.append(SourceCache().text(str(root / "pipe.c")))
        with contextlib.suppress(OSError):
            answers.append(read_file(root / "pipe.c"))

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    asker.join(30)
    assert answers == [None]
    # SARIF output (results fingerprinted from their lines' text, notices apart).
    sarif = tmp_path / "out.sarif"
    assert _check_in_a_process(root, "--no-cache", "--format", "sarif", "-o", sarif)[0] == 1
    log = json.loads(sarif.read_text())["runs"][0]
    assert [r["ruleId"] for r in log["results"]] == ["DDI401"]
    notes = log["invocations"][0]["toolExecutionNotifications"]
    assert [n["descriptor"]["id"] for n in notes] == [c for _, c, _ in expected[1:]]


def test_a_huge_file_is_read_no_further_than_the_limit(tmp_path: Path, builtin_rules: list[Rule],
                                                       knowledge: Knowledge) -> None:
    huge = tmp_path / "table.c"
    row = b"    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,\n"
    huge.write_bytes(b"const unsigned char Table[] = {\n"
                     + row * (MAX_FILE_BYTES // len(row) + 100) + b"};\n")
    assert len(read_file(huge)) == MAX_FILE_BYTES + 1
    small = tmp_path / "drv.c"
    small.write_text(DRIVER)
    assert read_file(small) == DRIVER.encode()
    if os.path.exists("/proc/self/status"):  # a regular file whose size says 0
        assert read_file("/proc/self/status").startswith(b"Name:")
    result = run([huge, small], builtin_rules, knowledge)
    got = [(Path(f.location.path).name, f.code, f.message) for f in result.findings]
    assert got == [("drv.c", "DDI401", got[0][2]),
                   ("table.c", "DDI904", "file is larger than the 8 MiB limit; not analyzed")]


def _non_utf8_name() -> str | None:
    """A file name that is not UTF-8, where the file system takes one."""
    return os.fsdecode(b"drv-\xff.c") if sys.platform.startswith("linux") else None


@pytest.mark.skipif(_non_utf8_name() is None, reason="names must be valid Unicode here")
def test_a_file_name_that_is_not_utf8_is_analyzed_and_cached(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Its bytes come as lone surrogates, which SQLite's text cannot hold: the cache raised.
    name = _non_utf8_name()
    assert name is not None
    root = tmp_path / "src"
    root.mkdir()
    (root / name).write_text(DRIVER)
    (root / "other.c").write_text(DRIVER)
    argv = ["check", "--format", "json", "--cache-dir", str(tmp_path / "cache"), str(root)]
    outputs = []
    for _ in range(3):  # cold, warm (remembered hashes), warm again
        assert main(argv) == 1
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2]
    assert [(Path(f["path"]).name, f["code"]) for f in json.loads(outputs[0])] == [
        (name, "DDI401"), ("other.c", "DDI401")]
    for fmt in ("text", "github", "sarif"):  # a report written to a file names it too
        out = tmp_path / f"report.{fmt}"
        assert main([*argv, "--format", fmt, "-o", str(out)]) == 1
        assert (b"drv-%FF.c" if fmt == "sarif" else b"drv-\xff.c") in out.read_bytes()
    cache = ResultCache(tmp_path / "cache", "salt")
    key = cache.facts_key(str(root / name), "digest", True)
    cache.put_many([(key, "value")])
    assert cache.get_many([key, key + "x"]) == {key: "value"}
    cache.remember_digests([(str(root / name), (1, 2, 3, 4), "digest", 5)])
    assert cache.known_digests([str(root / name)]) == {
        str(root / name): ((1, 2, 3, 4), "digest", 5)}
    cache.close()


def _no_knowledge() -> Knowledge:
    from ddilint.knowledge import load_knowledge

    return load_knowledge()


def test_output_is_deterministic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(6):
        (tmp_path / f"f{5 - i}.c").write_text(DRIVER * (i + 1))
    main(["check", "--format", "json", str(tmp_path)])
    first = capsys.readouterr().out
    main(["check", "--format", "json", str(tmp_path)])
    assert capsys.readouterr().out == first
    data = json.loads(first)
    assert [(d["path"], d["line"]) for d in data] == sorted((d["path"], d["line"]) for d in data)


def test_a_file_past_its_handle_steps_says_so_once(
        builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    # 400 keys opened and closed in a row: each open is followed to the function's end, so
    # the file runs out of steps part way; that was one "too many paths" per handle.
    n = 400
    body = "".join(f"    HANDLE h{i};\n" for i in range(n)) + "".join(
        f"    status = ZwOpenKey(&h{i}, KEY_READ, oa);\n"
        + ("    if (!NT_SUCCESS(status)) { return status; }\n" if i == 0
           else f"    if (NT_SUCCESS(status)) {{ ZwClose(h{i}); }}\n")
        for i in range(n))
    text = ("#include <ntddk.h>\nNTSTATUS Many(POBJECT_ATTRIBUTES oa)\n{\n"
            f"    NTSTATUS status;\n{body}    return status;\n}}\n")
    res = analyze(text.encode(), builtin_rules, knowledge)
    notes = [f.message for f in res.findings if f.code == "DDI905"]
    assert len(notes) == 1 and notes[0].startswith("handles not checked in Many from `h")
    assert f"the file took the {MAX_STEPS_PER_FILE:,} steps" in notes[0]
    # The handles before that point are checked: h0 is never closed.
    assert [(f.code, f.location.line) for f in res.findings if f.code != "DDI905"] == [
        ("DDI201", n + 5)]

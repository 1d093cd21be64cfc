"""The execution-context engine: roles, IRQL ranges, system context, traces, the project
model across files, and `ddilint roles`."""

from __future__ import annotations

import json
import pickle
from collections import deque
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddilint.analyzer.engine import Options, build_project
from ddilint.analyzer.project import (
    STORY_HEAD,
    STORY_TAIL,
    Project,
    _elide,
    _nearest,
    _Places,
    nearest_entries,
)
from ddilint.analyzer.summary import summarize
from ddilint.cli import main
from ddilint.knowledge import load_knowledge
from ddilint.rules.base import FileContext
from tests.conftest import FIXTURES, parse_text

DRIVER = """
#include <ntddk.h>
static KDPC g_Dpc;
static PIO_WORKITEM g_Item;
KSTART_ROUTINE Worker;

VOID Common(VOID) { }
VOID FromDpc(VOID) { Common(); }
VOID OnDpc(PKDPC Dpc, PVOID C, PVOID A, PVOID B) { FromDpc(); }
VOID Worker(PVOID Context) { Common(); }
VOID OnItem(PDEVICE_OBJECT D, PVOID C) { }
VOID OnProcess(HANDLE Parent, HANDLE Pid, BOOLEAN Create) { }
VOID Orphan(VOID) { }
NTSTATUS OnCreate(PDEVICE_OBJECT D, PIRP Irp) { return STATUS_SUCCESS; }
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING Path)
{
    HANDLE thread;
    KeInitializeDpc(&g_Dpc, OnDpc, NULL);
    PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, NULL, NULL, NULL, Worker, NULL);
    IoQueueWorkItem(g_Item, OnItem, DelayedWorkQueue, NULL);
    PsSetCreateProcessNotifyRoutine(OnProcess, FALSE);
    DriverObject->MajorFunction[IRP_MJ_CREATE] = OnCreate;
    return STATUS_SUCCESS;
}
"""


def _ctx(text: str, roles: dict[str, str] | None = None) -> FileContext:
    fir = parse_text(text)
    k = load_knowledge()
    project = Project([summarize(fir, k)], k, roles)
    return FileContext(fir, k, "kernel", {}, project)


def _fn(ctx: FileContext, name: str):  # type: ignore[no-untyped-def]
    return next(f for f in ctx.file.functions if f.name == name)


def test_roles_irql_and_system_context() -> None:
    ctx = _ctx(DRIVER)
    dpc = ctx.execution_context(_fn(ctx, "OnDpc"))
    assert (dpc.irql_min, dpc.irql_max, dpc.system_only) == (2, 2, False)
    assert "OnDpc is a DPC (KeInitializeDpc at t.c:" in dpc.reason
    helper = ctx.execution_context(_fn(ctx, "FromDpc"))
    assert helper.irql_max == 2 and "-> FromDpc (t.c:9)" in helper.reason
    assert [s.message for s in helper.trace][-1] == "calls FromDpc"
    # Common is reached from the DPC (DISPATCH) and the system thread (PASSIVE).
    common = ctx.execution_context(_fn(ctx, "Common"))
    assert (common.irql_min, common.irql_max, common.system_only) == (0, 2, False)
    for name in ("Worker", "OnItem", "DriverEntry"):
        c = ctx.execution_context(_fn(ctx, name))
        assert c.system_only and c.irql_max == 0, name
    for name in ("OnProcess", "OnCreate", "Orphan"):
        c = ctx.execution_context(_fn(ctx, name))
        assert not c.system_only and c.irql_max == 0, name
    assert ctx.execution_context(None).irql_max == 0


def test_thread_in_another_process_is_not_system() -> None:
    ctx = _ctx("""
VOID Start(PVOID C) { }
VOID Go(HANDLE Process) {
    HANDLE t;
    PsCreateSystemThread(&t, 0, NULL, Process, NULL, Start, NULL);
}
""")
    assert not ctx.execution_context(_fn(ctx, "Start")).system_only


def test_config_role_replaces_inferred_one() -> None:
    ctx = _ctx("VOID Poll(PVOID Context) { }\n", {"Poll": "dpc"})
    c = ctx.execution_context(_fn(ctx, "Poll"))
    assert c.irql_max == 2 and "role set in the configuration" in c.reason


def test_call_context_follows_locks_and_narrowing() -> None:
    ctx = _ctx("""
VOID F(PKSPIN_LOCK Lock) {
    KIRQL old;
    Before();
    KeAcquireSpinLock(Lock, &old);
    Inside();
    KeReleaseSpinLock(Lock, old);
    After();
    if (KeGetCurrentIrql() > PASSIVE_LEVEL) { Raised(); return; }
    Passive();
}
""")
    by = {c.callee: ctx.call_context(c).irql_max for c in ctx.file.calls}
    assert by["Before"] == 0 and by["Inside"] == 2 and by["After"] == 0
    assert by["Passive"] == 0


def test_a_local_variable_is_no_reference_to_a_function_of_its_name(tmp_path: Path) -> None:
    # Another file defines Routine(); here `Routine` is a local, registered as the DPC.
    util = tmp_path / "util.c"
    util.write_text("ULONG Routine(VOID) { return 0; }\n")
    arm = tmp_path / "arm.c"
    arm.write_text("VOID OnDpc(PKDPC D, PVOID C, PVOID X, PVOID Y) { }\n"
                   "VOID Arm(PKDPC D) {\n"
                   "    PKDEFERRED_ROUTINE Routine = OnDpc;\n"
                   "    KeInitializeDpc(D, Routine, NULL);\n"
                   "}\n")
    k = load_knowledge()
    project, _ = build_project([util, arm], k, Options())
    util_fn = project.node_for(util.as_posix(), 0)
    assert util_fn is not None and project.roles_of(util_fn) == []
    assert project.function_context(util_fn).irql_max == 0
    fir = parse_text(arm.read_text(), arm.as_posix())
    assert [r.name for r in fir.refs] == ["OnDpc"]  # the local `Routine` is no reference


def test_summaries_pickle_and_link_across_files(tmp_path: Path) -> None:
    a = tmp_path / "a.c"
    b = tmp_path / "b.c"
    a.write_text("VOID Helper(VOID);\nVOID OnDpc(PKDPC D, PVOID C, PVOID X, PVOID Y)"
                 " { Helper(); }\nVOID Arm(PKDPC D) { KeInitializeDpc(D, OnDpc, NULL); }\n")
    b.write_text("VOID Helper(VOID) { }\nstatic VOID OnDpc(VOID) { }\n")
    k = load_knowledge()
    project, _ = build_project([a, b], k, Options())
    fir = parse_text(b.read_text(), b.as_posix())
    assert pickle.loads(pickle.dumps(summarize(fir, k))) == summarize(fir, k)
    ctx = FileContext(fir, k, "kernel", {}, project)
    assert ctx.execution_context(_fn(ctx, "Helper")).irql_max == 2
    # b.c's static OnDpc is another function than a.c's DPC.
    assert ctx.execution_context(_fn(ctx, "OnDpc")).irql_max == 0


def test_roles_command(capsys) -> None:  # type: ignore[no-untyped-def]
    folder = FIXTURES / "irql-too-high" / "silent_passive_across_files"
    assert main(["roles", "--isolated", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "RetryOpen: work_item; PASSIVE_LEVEL; system process;" in out
    assert "OpenCallerToken: -; PASSIVE_LEVEL; system process;" in out


def test_roles_command_in_worker_processes_says_the_same(capsys) -> None:  # type: ignore[no-untyped-def]
    # Every fixture folder as one tree: enough files for the workers to share.
    assert main(["roles", "--isolated", "--format", "json", "-j", "1", str(FIXTURES)]) == 0
    serial = json.loads(capsys.readouterr().out)
    assert main(["roles", "--isolated", "--format", "json", "-j", "2", str(FIXTURES)]) == 0
    parallel = json.loads(capsys.readouterr().out)
    assert len(serial) > 50
    assert parallel == serial
    assert any(r["role"] == "work_item" and r["function"] == "RetryOpen" for r in parallel)


def test_a_cpp_header_method_that_hands_its_work_on_is_in_the_chain(capsys) -> None:  # type: ignore[no-untyped-def]
    # stream.h is C++ in a .h file: its inline Stream::DpcRoutine calls
    # m_Detector.DpcRoutine(), which is Detector's method, not a call of itself.
    folder = FIXTURES / "irql-too-high" / "fires_cpp_header_delegation"
    assert main(["roles", "--isolated", "--format", "json", str(folder)]) == 0
    rows = {r["function"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["Stream::DpcRoutine"]["path"].endswith("stream.h")
    assert rows["Stream::DpcRoutine"]["irql"] == "DISPATCH_LEVEL"
    why = rows["Detector::DpcRoutine"]["why"]
    assert "Stream::OnDpc is a DPC" in why
    assert "-> Stream::DpcRoutine (stream.cpp:12) -> Detector::DpcRoutine (stream.h:12)" in why


def test_a_qualified_reference_reaches_only_its_class(tmp_path: Path) -> None:
    # `Color::Red` is an enumerator, not the free function Red(): Red keeps its context.
    a = tmp_path / "a.cpp"
    a.write_text("enum class Color { Red, Blue };\n"
                 "void Paint(Color c);\n"
                 "NTSTATUS DriverEntry(PDRIVER_OBJECT D, PUNICODE_STRING R) {\n"
                 "    Paint(Color::Red);\n"
                 "    Red();\n"
                 "    return 0;\n"
                 "}\n")
    b = tmp_path / "b.cpp"
    b.write_text("void Red() { }\n")
    project, _ = build_project([a, b], load_knowledge(), Options())
    red = project.node_for(b.as_posix(), 0)
    assert red is not None
    assert project.nodes[red].escapes == []
    assert project.function_context(red).system_only


def test_a_constant_stored_in_a_tested_flag_says_how_its_test_goes() -> None:
    from ddilint.analyzer.summary import flag_tests, flag_truth

    tests = flag_tests({"inRegion", "!done", "old==HIGH_LEVEL", "2!=count", "a==b",
                         "KeGetCurrentIrql()<=APC_LEVEL"})
    assert tests["inRegion"] == [("inRegion", "", "")]
    assert tests["done"] == [("!done", "!", "")]
    assert tests["old"] == [("old==HIGH_LEVEL", "==", "HIGH_LEVEL")]
    assert tests["count"] == [("2!=count", "!=", "2")]
    assert "HIGH_LEVEL" not in tests and "KeGetCurrentIrql" not in tests
    assert (tests["a"], tests["b"]) == ([("a==b", "==", "b")], [("a==b", "==", "a")])
    assert flag_truth("", "", "TRUE") is True and flag_truth("", "", "0") is False
    assert flag_truth("!", "", "FALSE") is True and flag_truth("", "", "MY_FLAG") is None
    assert flag_truth("==", "HIGH_LEVEL", "HIGH_LEVEL") is True
    assert flag_truth("==", "HIGH_LEVEL", "PASSIVE_LEVEL") is False
    assert flag_truth("!=", "2", "0x2") is False and flag_truth("==", "b", "1") is None
    assert flag_truth("==", "HIGH_LEVEL", None) is None


def test_many_flags_set_on_every_path_keep_one_atom_per_irql() -> None:
    # Sixteen flags, each set on both branches of its own test, around a spin lock: every
    # combination of them reaches the lock. The states keep one atom per IRQL and origin
    # (guarded by what every path agrees on), not one per combination of flags.
    sets = "".join(f"    if (Mode & {1 << i}) {{ f{i} = TRUE; }} else {{ f{i} = FALSE; }}\n"
                   for i in range(16))
    uses = "".join(f"    if (f{i}) {{ g_Count += {i}; }}\n" for i in range(16))
    decls = "".join(f"    BOOLEAN f{i};\n" for i in range(16))
    text = ("#include <ntddk.h>\nKSPIN_LOCK g_Lock;\nULONG g_Count;\n"
            "_IRQL_requires_max_(PASSIVE_LEVEL)\nVOID Tally(ULONG Mode, HANDLE H)\n{\n"
            f"    KIRQL old;\n{decls}{sets}"
            "    KeAcquireSpinLock(&g_Lock, &old);\n"
            f"{uses}"
            "    ZwClose(H);\n"
            "    KeReleaseSpinLock(&g_Lock, old);\n"
            "    ZwClose(H);\n}\n")
    ctx = _ctx(text)
    project = ctx.project
    assert project is not None
    states = [st for per_fn in project.call_states.values() for st in per_fn.values()]
    assert states and max(len(st) for st in states) <= 2
    closes = [i for i, c in enumerate(ctx.file.calls) if c.callee == "ZwClose"]
    assert [project.call_irql_max("t.c", i) for i in closes] == [2, 0]


def test_a_constant_argument_rules_out_the_callers_a_parameter_test_excludes() -> None:
    told = (FIXTURES / "irql-too-high" / "silent_irql_told_by_argument.c").read_text()
    ctx = _ctx(told)
    project = ctx.project
    assert project is not None
    calls = {c.callee: i for i, c in enumerate(ctx.file.calls)}
    # Behind `if (!AtDispatchLevel)`: only QueueStop (FALSE) gets there, not the DPC (TRUE);
    # the helper it calls there is reached at PASSIVE_LEVEL too.
    assert project.call_irql_max("t.c", calls["KeFlushQueuedDpcs"]) == 0
    assert project.call_irql_max("t.c", calls["KeWaitForSingleObject"]) == 0
    # Elsewhere in the same function the DPC's IRQL holds.
    assert project.call_irql_max("t.c", calls["KeAcquireSpinLockAtDpcLevel"]) == 2

    fires = (FIXTURES / "irql-too-high" / "fires_irql_argument_not_constant.c").read_text()
    ctx = _ctx(fires)
    project = ctx.project
    assert project is not None
    waits = [i for i, c in enumerate(ctx.file.calls) if c.callee == "KeWaitForSingleObject"]
    contexts = [project.call_context("t.c", i) for i in waits]
    assert [c.irql_max if c else None for c in contexts] == [2, 2, 2]
    # The trace names the caller that can get there: the one passing what it does not know,
    # not the DPC that passes TRUE.
    unless = contexts[1]
    assert unless is not None and "OnOtherDpc" in unless.reason
    assert "OnDpc is" not in unless.reason


def test_the_constant_arguments_of_a_call_are_kept_with_their_positions() -> None:
    from ddilint.analyzer.summary import _constant_args

    assert _constant_args(b"Use(pOpen, OpenDetached, TRUE)") == ((2, 1),)
    assert _constant_args(b"Use(Get(FALSE, x), DISPATCH_LEVEL, false)") == ((1, 2), (2, 0))
    assert _constant_args(b"Use(a[TRUE], (TRUE), TRUE_VALUE, Fn(TRUE))") == ()
    # A comment or string among the arguments: not split at all.
    assert _constant_args(b"Use(TRUE /* , */, FALSE)") == ()
    assert _constant_args(b'Use("a,b", TRUE)') == ()
    text = ("#include <ntddk.h>\n"
            "VOID Work(PVOID P, BOOLEAN AtDpc);\n"
            "VOID Caller(PVOID P) {\n"
            "    Work(P, TRUE);\n"
            "    Work(Wrap(P, FALSE), KeGetCurrentIrql() == DISPATCH_LEVEL);\n"
            "    KeSetEvent(P, 0, FALSE);\n"
            "}\n")
    fir = parse_text(text)
    s = summarize(fir, load_knowledge())
    consts = {(c.callee, c.line): c.consts for c in s.calls}
    assert consts[("Work", 4)] == ((1, 1),)
    # The second argument is a comparison, not a constant; `Wrap` gets its own.
    assert consts[("Work", 5)] == () and consts[("Wrap", 5)] == ((1, 0),)
    # A routine the knowledge table has is no function of the project: nothing kept.
    assert consts[("KeSetEvent", 6)] == ()


POWER_WAYS = """
static NTSTATUS ReadPolicy(PDEVICE_OBJECT D, PULONG p)
{
    ULONG len = 0;
    return IoGetDeviceProperty(D, DevicePropertyPowerData, sizeof(*p), p, &len);
}
static NTSTATUS Refresh(PDEVICE_OBJECT D, PULONG p) { return ReadPolicy(D, p); }
static NTSTATUS AnyMajor(PDEVICE_OBJECT D, PIRP Irp)
{
    ULONG v = 0;
    switch (IoGetCurrentIrpStackLocation(Irp)->MajorFunction) {
    case IRP_MJ_POWER:
        Refresh(D, &v);
        break;
    case IRP_MJ_READ:
        ReadPolicy(D, &v);
        break;
    }
    return STATUS_SUCCESS;
}
static NTSTATUS PowerOnly(PDEVICE_OBJECT D, PIRP Irp)
{
    ULONG v = 0;
    ReadPolicy(D, &v);
    return STATUS_SUCCESS;
}
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    DriverObject->MajorFunction[IRP_MJ_READ] = AnyMajor;
    DriverObject->MajorFunction[IRP_MJ_POWER] = AnyMajor;
    DriverObject->MajorFunction[IRP_MJ_POWER] = PowerOnly;
    return STATUS_SUCCESS;
}
"""


def test_power_entries_nearest_first_with_a_shared_dispatchers_power_side() -> None:
    def nearest(source: str) -> tuple[Project, int, int | None]:
        model = _ctx(source).model
        node = {model.nodes[n].summary.name: n for n in range(len(model.nodes))}
        return model, node["ReadPolicy"], model.nearest_entry(node["ReadPolicy"], "dispatch",
                                                             "IRP_MJ_POWER")

    # PowerOnly calls it directly: the nearest; AnyMajor only through Refresh.
    model, n, entry = nearest(POWER_WAYS)
    assert entry is not None and model.nodes[entry].summary.name == "PowerOnly"
    # Without PowerOnly, AnyMajor reaches it through Refresh on its IRP_MJ_POWER side (its
    # direct call is on the IRP_MJ_READ side, which is no way for power).
    alone = POWER_WAYS.replace("DriverObject->MajorFunction[IRP_MJ_POWER] = PowerOnly;", "")
    model, n, entry = nearest(alone)
    assert entry is not None and model.nodes[entry].summary.name == "AnyMajor"
    text, steps = model.entry_story(entry, n, "dispatch", "IRP_MJ_POWER")
    assert "on its IRP_MJ_POWER path" in text and "Refresh" in text
    assert [s.message for s in steps][1:] == ["calls Refresh", "calls ReadPolicy"]
    # And without its IRP_MJ_POWER registration, nothing reaches it for power.
    read_only = alone.replace("DriverObject->MajorFunction[IRP_MJ_POWER] = AnyMajor;", "")
    assert nearest(read_only)[2] is None


RAISING = """
#include <ntddk.h>
KSPIN_LOCK g_Lock;

VOID Touch(VOID) { }
VOID Raise(PKIRQL Old) { KeAcquireSpinLock(&g_Lock, Old); }
VOID Lower(KIRQL Old) { KeReleaseSpinLock(&g_Lock, Old); }
VOID Locked(VOID)
{
    KIRQL old;
    Raise(&old);
    Touch();
    ZwClose(NULL);
    KeReleaseSpinLock(&g_Lock, old);
}
VOID Alone(VOID)
{
    KIRQL old;
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    Touch();
    KeLowerIrql(old);
}
"""


def test_a_graph_solved_alone_in_phase_one_is_what_the_model_would_solve() -> None:
    from functools import partial

    from ddilint.analyzer.irql_solve import no_callee_exit, solve_graph

    k = load_knowledge()
    fir = parse_text(RAISING)
    summary = pickle.loads(pickle.dumps(summarize(fir, k)))  # as a worker sends it
    model = Project([summary], k)
    graphs = {node.summary.name: (n, node.summary.graph) for n, node in enumerate(model.nodes)
              if node.summary.graph is not None}
    assert {"Raise", "Lower", "Locked", "Alone"} <= set(graphs)
    for name, (n, g) in graphs.items():
        assert g.alone == solve_graph(g, no_callee_exit), name
        fresh = solve_graph(g, partial(model._callee_exit, n))
        # Where no callee changes the IRQL, the model took the phase-one solution; where
        # one does (Locked calls Raise), it solved again with the callee's exit.
        assert (fresh == g.alone) == (name != "Locked"), name
        assert model.call_states.get(n, {}) == dict(fresh.states), name
    # ZwClose in Locked runs with the spin lock Raise took held.
    zw = next(i for i, c in enumerate(summary.calls) if c.callee == "ZwClose")
    assert model.call_irql_max(summary.path, zw) == 2


def _first_met(callers: list[list[tuple[int, int]]], plain: set[int],
               side: set[tuple[int, int]], n: int) -> int:
    """What a breadth-first walk up from `n` meets first: the definition
    `nearest_entries` computes for all nodes at once, walked out for one."""
    dist = {n: 0}
    work = deque([n])
    found: dict[int, tuple[int, int]] = {}

    def meet(m: int, d: int) -> None:
        if m not in found or d < found[m][0]:
            found[m] = (d, len(found))

    while work:
        m = work.popleft()
        if m in plain:
            meet(m, dist[m])
        for c, ci in callers[m]:
            if (c, ci) in side:
                meet(c, dist[m] + 1)
            if c not in dist:
                dist[c] = dist[m] + 1
                work.append(c)
    return min(found, key=found.__getitem__, default=-1)


@st.composite
def _call_graphs(draw: st.DrawFn) -> tuple[list[list[tuple[int, int]]], set[int],
                                           set[tuple[int, int]]]:
    size = draw(st.integers(1, 14))
    node = st.integers(0, size - 1)
    callers = [draw(st.lists(st.tuples(node, st.integers(0, 3)), max_size=5))
               for _ in range(size)]
    plain = draw(st.sets(node, max_size=4))
    # A shared dispatcher's side (`Project._on_major_side`) is never a plain entry.
    edges = sorted({e for es in callers for e in es if e[0] not in plain})
    side = draw(st.sets(st.sampled_from(edges), max_size=4)) if edges else set()
    return callers, plain, side


@settings(max_examples=400, deadline=None)
@given(_call_graphs())
def test_nearest_entries_meet_what_a_walk_from_each_node_meets_first(
        graph: tuple[list[list[tuple[int, int]]], set[int], set[tuple[int, int]]]) -> None:
    callers, plain, side = graph
    table = nearest_entries(callers, plain, side)
    assert table == [_first_met(callers, plain, side, n) for n in range(len(callers))]


def test_nearest_entries_of_a_long_chain_in_one_walk() -> None:
    # F0 <- F1 <- ... <- F19999, the entry at the top: every node's answer at once.
    size = 20_000
    callers = [[(n + 1, 0)] for n in range(size - 1)] + [[]]
    assert nearest_entries(callers, [size - 1], ()) == [size - 1] * size
    assert nearest_entries(callers, [], ()) == [-1] * size


def _chain(name: str, size: int, last: str, rest: str) -> str:
    """A source where `name`0 calls `name`1 and so on up to `name`{size - 1}, whose body
    is `last`; then two functions that only call each other, and `rest`."""
    return ("#include <ntddk.h>\n"
            + "".join(f"VOID {name}{i}(PVOID c) {{ {name}{i + 1}(c); }}\n"
                      for i in range(size - 1))
            + f"VOID {name}{size - 1}(PVOID c) {{ {last} }}\n"
            "VOID Ping(PVOID c) { if (c) Pong(c); }\n"
            "VOID Pong(PVOID c) { if (c) Ping(c); }\n" + rest)


# A DPC's chain of 40 helpers, a self-recursive walker nobody else calls and its leaf, and
# two functions that only call each other: the `why` walks a story takes are long, short
# and round.
_CHAINS = _chain("Pass", 40, "Leaf(c);",
                 "VOID Leaf(PVOID c) { UNREFERENCED_PARAMETER(c); }\n"
                 "VOID Walk(PVOID c) { if (c) Walk(*(PVOID *)c); Leaf(c); }\n"
                 "VOID Dpc(PKDPC d, PVOID c, PVOID a, PVOID b) { Pass0(c); }\n"
                 "VOID Setup(PKDPC d) { KeInitializeDpc(d, Dpc, NULL); }\n")


def test_stories_remembered_along_a_chain_are_the_ones_walked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = _ctx(_CHAINS).model
    sizes = set()
    for n in range(len(model.nodes)):
        chain, origin = model._why_walk(n, None)
        known = model._why_chain(n)
        if known is None:
            # Only where the walk comes back round to a function it passed.
            assert origin in {n, *(link[0] for link in chain)}
            sizes.add("round")
        else:
            assert known == (len(chain), origin, tuple(chain[:STORY_HEAD]))
            assert model._why_links(n, len(chain)) == chain
            sizes.add(len(chain) > STORY_HEAD + STORY_TAIL)
    assert sizes == {"round", True, False}
    remembered = [model._entry_story(n) for n in range(len(model.nodes))]
    monkeypatch.setattr(Project, "_why_chain", lambda self, n: None)
    assert remembered == [model._entry_story(n) for n in range(len(model.nodes))]


def test_story_calls_follow_the_first_shortest_chain_down() -> None:
    model = _ctx(_CHAINS).model

    def walked(entry: int, n: int) -> list[tuple[int, int, int]]:
        prev: dict[int, tuple[int, int]] = {}
        work, seen = deque([entry]), {entry}
        while work:
            m = work.popleft()
            for t, ci in model.nodes[m].callees:
                if t not in seen:
                    seen.add(t)
                    prev[t] = (m, ci)
                    work.append(t)
        chain = []
        while n in prev:
            chain.append((n, *prev[n]))
            n = prev[n][0]
        return chain[::-1]

    nodes = range(len(model.nodes))
    for entry in nodes:
        for n in nodes:
            expected, cut = _elide(walked(entry, n))
            assert model.story_calls(entry, n) == (list(expected), cut)
    dpc = next(n for n in nodes if model.nodes[n].summary.name == "Dpc")
    leaf = next(n for n in nodes if model.nodes[n].summary.name == "Leaf")
    assert model.story_calls(dpc, leaf)[1] == 41 - STORY_HEAD - STORY_TAIL


_FOLDERS = st.lists(st.sampled_from(["drv", "sys", "lib", "a", "b"]), max_size=4)


@st.composite
def _definitions(draw: st.DrawFn) -> tuple[list[str], list[int], list[str]]:
    def path(parts: list[str]) -> str:
        root = draw(st.sampled_from(["", "/src/", "C:\\\\src\\\\"]))
        sep = "\\\\" if root.startswith("C:") else "/"
        return root + sep.join([*parts, draw(st.sampled_from(["x.c", "y.c"]))])

    paths = draw(st.lists(_FOLDERS.map(path), min_size=1, max_size=30))
    candidates = draw(st.lists(st.integers(0, len(paths) - 1), max_size=40))
    asked = draw(st.lists(_FOLDERS.map(path), min_size=1, max_size=8))
    return paths, candidates, asked + paths


@settings(max_examples=300, deadline=None)
@given(_definitions())
def test_places_find_the_nearest_definitions_as_looking_at_each_does(
        case: tuple[list[str], list[int], list[str]]) -> None:
    paths, candidates, asked = case
    nodes: Any = [SimpleNamespace(path=p) for p in paths]
    places = _Places(candidates, nodes)
    for path in asked:
        assert places.nearest(path) == _nearest(candidates, nodes, path)


def test_a_tree_of_many_drivers_links_each_call_to_its_own_driver() -> None:
    # 40 drivers, each defining Helper in one file and calling it from another: more
    # candidates than FEW_CANDIDATES, so the folders decide through `_Places`.
    k = load_knowledge()
    sums = []
    for i in range(40):
        sums.append(summarize(parse_text("VOID Helper(PVOID c) { UNREFERENCED_PARAMETER(c); }\n",
                                         f"/t/drv{i}/helper.c"), k))
        sums.append(summarize(parse_text("VOID Caller(PVOID c) { Helper(c); }\n",
                                         f"/t/drv{i}/drv.c"), k))
    sums.append(summarize(parse_text("VOID Shared(PVOID c) { Helper(c); }\n", "/t/lib.c"), k))
    model = Project(sums, k)
    for node in model.nodes:
        if node.summary.name == "Caller":
            [(t, _ci)] = node.callees
            assert model.nodes[t].path == node.path.replace("drv.c", "helper.c")
    # A file above them all is near every driver folder: all 40 are its callees.
    shared = next(node for node in model.nodes if node.summary.name == "Shared")
    assert len(shared.callees) == 40


def test_a_call_through_a_field_reaches_each_function_stored_there_once() -> None:
    k = load_knowledge()
    ctx = "typedef struct _CTX { VOID (*Callback)(struct _CTX *); } CTX, *PCTX;\n"
    sources = {
        "/t/a.c": ctx + "VOID CbA(PCTX c) { }\nVOID ArmA(PCTX c) { c->Callback = CbA; }\n",
        "/t/b.c": ctx + "VOID CbB(PCTX c) { }\n"
                  "VOID ArmB(PCTX c) { c->Callback = CbB; c->Callback = CbA; }\n",
        "/t/fire.c": ctx + "VOID Fire(PCTX c) { c->Callback(c); }\n"
                     "VOID FireTwice(PCTX c) { c->Callback(c); c->Callback(c); }\n",
    }
    model = Project([summarize(parse_text(text, path), k) for path, text in sources.items()],
                    k)
    callees = {node.summary.name: [model.nodes[t].summary.name for t, _ci in node.callees]
               for node in model.nodes}
    # In the order the tree stores them, each once per call.
    assert callees["Fire"] == ["CbA", "CbB"]
    assert callees["FireTwice"] == ["CbA", "CbB", "CbA", "CbB"]
    assert callees["ArmA"] == callees["ArmB"] == []


# A system thread's chain of 30 helpers, the last calling itself and Ping, which only
# Pong calls besides.
_SYSTEM_CHAINS = _chain(
    "Step", 30, "if (c) Step29(c); Ping(c);",
    "VOID Start(PVOID c) { Step0(c); PsTerminateSystemThread(STATUS_SUCCESS); }\n"
    "NTSTATUS DriverEntry(PDRIVER_OBJECT D, PUNICODE_STRING R)\n"
    "{ HANDLE t; return PsCreateSystemThread(&t, THREAD_ALL_ACCESS, NULL, NULL, NULL, Start,"
    " NULL); }\n")


def test_system_roots_remembered_along_a_chain_are_the_ones_walked() -> None:
    model = _ctx(_SYSTEM_CHAINS).model

    def walked(n: int) -> int:
        last, seen = n, {n}
        while (prev := model.system_why[last]) is not None and prev[0] not in seen:
            last = prev[0]
            seen.add(last)
        return last

    nodes = range(len(model.nodes))
    start, entry = (next(n for n in nodes if model.nodes[n].summary.name == name)
                    for name in ("Start", "DriverEntry"))
    assert all(model.system[n] for n in nodes)
    assert [model._system_root(n) for n in nodes] == [walked(n) for n in nodes]
    assert {model._system_root(n) for n in nodes} == {start, entry}
    step = next(n for n in nodes if model.nodes[n].summary.name == "Step20")
    assert model._system_phrase(step) == (
        "system process: every way in comes from Start (a system thread start routine)")

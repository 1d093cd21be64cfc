"""The control-flow graph: the shapes driver code uses, checked path by path."""

from __future__ import annotations

from ddilint.analyzer.cfg import CFG, Block
from tests.conftest import parse_text


def cfg_of(body: str) -> CFG:
    fir = parse_text("NTSTATUS F(HANDLE p)\n{\n" + body + "\n}\n")
    assert len(fir.functions) == 1
    return fir.functions[0].cfg


def calls_in(block: Block) -> list[str]:
    out: list[str] = []
    for el in block.elements:
        if el.expr is not None:
            out.extend(c.callee or "?" for c in el.expr.calls())
    return out


def paths(cfg: CFG, limit: int = 200, exceptional: bool = False) -> list[list[str]]:
    """Every acyclic entry-to-exit path as the list of calls made along it."""
    out: list[list[str]] = []
    stack: list[tuple[Block, list[str], frozenset[int]]] = [(cfg.entry, [], frozenset())]
    while stack and len(out) < limit:
        block, seen_calls, seen = stack.pop()
        here = seen_calls + calls_in(block)
        if block is cfg.exit:
            out.append(here)
            continue
        for e in block.succs:
            if e.exceptional and not exceptional:
                continue
            if e.dst.id not in seen:
                stack.append((e.dst, here, seen | {block.id}))
    return out


def test_goto_cleanup_every_path_reaches_the_label() -> None:
    cfg = cfg_of("""
    NTSTATUS s = Open(&h);
    if (!NT_SUCCESS(s)) goto Exit;
    s = Use(h);
    if (!NT_SUCCESS(s)) goto Exit;
    More();
Exit:
    Close(h);
    return s;
""")
    ps = paths(cfg)
    assert len(ps) == 3
    assert all(p[0] == "Open" and p[-1] == "Close" for p in ps)
    assert ["Open", "NT_SUCCESS", "Close"] in ps
    assert ["Open", "NT_SUCCESS", "Use", "NT_SUCCESS", "More", "Close"] in ps


def test_finally_runs_on_leave_return_and_fallthrough() -> None:
    cfg = cfg_of("""
    __try {
        if (!Open(&h)) __leave;
        if (Check()) return 1;
        Use(h);
    } __finally {
        Release(h);
    }
    After();
    return 0;
""")
    ps = paths(cfg)
    assert len(ps) == 3
    for p in ps:
        assert "Release" in p, p
    # return 1 leaves without After(); __leave and fall-through run After().
    assert sum(1 for p in ps if p[-1] == "After") == 2
    assert ["Open", "Check", "Release"] in ps


def test_goto_out_of_try_runs_finally_but_goto_inside_does_not_twice() -> None:
    cfg = cfg_of("""
    __try {
        if (A()) goto Out;
        if (B()) goto In;
        C();
In:
        D();
    } __finally {
        F();
    }
Out:
    E();
""")
    for p in paths(cfg):
        assert p.count("F") == 1, p
        assert p[-1] == "E"


def test_switch_fallthrough_and_default() -> None:
    cfg = cfg_of("""
    switch (p) {
    case 1:
        One();
    case 2:
        Two();
        break;
    default:
        Other();
    }
    End();
""")
    ps = sorted(paths(cfg))
    assert ps == sorted([["One", "Two", "End"], ["Two", "End"], ["Other", "End"]])


def test_switch_without_default_can_skip() -> None:
    cfg = cfg_of("switch (p) { case 1: One(); break; }\nEnd();")
    assert sorted(paths(cfg)) == [["End"], ["One", "End"]]


def test_short_circuit_conditions_split() -> None:
    cfg = cfg_of("if (A() && B()) Then(); else Else();")
    ps = sorted(paths(cfg))
    assert ps == sorted([["A", "Else"], ["A", "B", "Then"], ["A", "B", "Else"]])
    cfg = cfg_of("if (!(A() || B())) Then();")
    ps = sorted(paths(cfg))
    assert ps == sorted([["A", "B", "Then"], ["A", "B"], ["A"]])


def test_constant_loops_have_no_impossible_edges() -> None:
    cfg = cfg_of("do { if (A()) break; B(); } while (0);\nC();")
    assert sorted(paths(cfg)) == [["A", "B", "C"], ["A", "C"]]
    cfg = cfg_of("while (TRUE) { if (A()) break; }\nC();")
    assert paths(cfg) == [["A", "C"]]


def test_loop_break_continue() -> None:
    cfg = cfg_of("for (i = 0; i < n; i++) { if (A()) continue; if (B()) break; C(); }\nD();")
    ps = paths(cfg)
    assert ["D"] in ps
    assert ["A", "B", "D"] in ps
    assert all(p[-1] == "D" for p in ps)


def test_except_handler_reached_only_by_exceptional_edges() -> None:
    cfg = cfg_of("__try { Probe(); } __except (EXCEPTION_EXECUTE_HANDLER) { Handler(); }\nEnd();")
    assert paths(cfg) == [["Probe", "End"]]
    assert ["Probe", "Handler", "End"] in paths(cfg, exceptional=True)


def test_cpp_try_catch() -> None:
    fir = parse_text("void F() { try { A(); } catch (...) { B(); } C(); }", "t.cpp")
    cfg = fir.functions[0].cfg
    assert paths(cfg) == [["A", "C"]]
    assert ["A", "B", "C"] in paths(cfg, exceptional=True)


def test_return_in_middle_leaves_unreachable_code_off_paths() -> None:
    cfg = cfg_of("A();\nreturn 0;\nB();")
    assert paths(cfg) == [["A"]]


def test_assertion_statement_is_a_branch_whose_false_side_stops() -> None:
    # What follows an assertion runs only where its condition holds; the condition's
    # calls are made once, on the way.
    cfg = cfg_of("A();\nNT_ASSERT(Check(p) && p != NULL);\nB();")
    assert sorted(paths(cfg)) == [["A", "Check", "B"]]
    conds = [el.expr.render() for b in cfg.blocks for el in b.elements if el.kind == "cond"]
    assert conds == ["Check(p)", "p != NULL"]
    # The message forms assert their second argument.
    cfg = cfg_of('ASSERTMSG("no device", p != NULL);\nB();')
    assert [el.expr.render() for b in cfg.blocks for el in b.elements
            if el.kind == "cond"] == ["p != NULL"]
    # An assertion that a place is never reached: nothing after it is on a path.
    cfg = cfg_of("if (p) { ASSERT(FALSE); Unreached(); }\nB();")
    assert paths(cfg) == [["B"]]
    assert ["B"] in paths(cfg_of("ASSERT(TRUE);\nB();"))


def test_a_method_or_value_named_like_an_assertion_is_a_plain_call() -> None:
    fir = parse_text("void F(Checker *c) { c->assert(1 == 2); B(); }", "t.cpp")
    assert paths(fir.functions[0].cfg) == [["assert", "B"]]
    assert paths(cfg_of("ASSERT();\nB();")) == [["ASSERT", "B"]]
    # A project's assertion macro asserts its one argument; two arguments: a plain call.
    assert paths(cfg_of("if (p) { DriverAssert(FALSE); A(); }\nB();")) == [["B"]]
    assert ["RtlAssert", "B"] in paths(cfg_of('RtlAssert("x", "f.c", 1, NULL);\nB();'))
    assert paths(cfg_of("if (p) { __assume(0); }\nB();")) == [["B"]]


def test_code_after_a_routine_that_never_returns_is_off_every_path() -> None:
    cfg = cfg_of("if (p) { KeBugCheckEx(1, 2, 3, 4, 5); A(); return 1; }\nB();")
    assert paths(cfg) == [["B"]]
    # The call itself is made (its own checks still apply).
    assert any("KeBugCheckEx" in calls_in(b) for b in cfg.blocks)
    # A method of that name is an ordinary call.
    fir = parse_text("void F(Logger *l) { l->exit(0); B(); }", "t.cpp")
    assert paths(fir.functions[0].cfg) == [["exit", "B"]]

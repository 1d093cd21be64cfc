"""Control-flow graphs of function bodies, built from the statement IR.

Handles `if/else`, `switch` (with fall-through), `while`/`do`/`for` (constant conditions
such as `while (TRUE)` and `do { } while (0)` get no impossible edge), `break`/`continue`,
`goto` and labels, `return`, SEH `__try/__except/__finally/__leave`, C++ `try/catch`, and
short-circuit `&&`, `||` and `!` in conditions (each operand gets its own branch, so an
analysis can refine its state on every edge).

`__finally` bodies are copied onto every way out of the `__try` (fall-through, `__leave`,
`return`, `goto`, `break`, `continue`), the way compilers lower them, so a release in a
`__finally` is seen on every path. Exceptional edges (from inside a `__try`/`try` body to
its `__except`/`catch` handler) are marked `exceptional` so an analysis can ignore them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ddilint.analyzer.ir import Decl, Expr, Stmt


@dataclass(eq=False, slots=True)
class Element:
    """One thing evaluated in a block: an expression, a declaration, a branch condition
    (always a block's last element), a `return` (with its value, if any)."""

    kind: str  # expr, decl, cond, return, switch
    expr: Expr | None = None
    decl: Decl | None = None
    start: int = 0


@dataclass(eq=False, slots=True)
class Edge:
    """A control-flow edge. `kind`: normal, true, false, case, default, exception.

    For true/false edges `cond` is the condition tested; for case edges `cond` is the
    switch value and `case` the case label's expression."""

    src: Block
    dst: Block
    kind: str = "normal"
    cond: Expr | None = None
    case: Expr | None = None

    @property
    def exceptional(self) -> bool:
        return self.kind == "exception"


@dataclass(eq=False, slots=True)
class Block:
    """A basic block: elements evaluated in order, then its successor edges."""

    id: int
    elements: list[Element] = field(default_factory=list)
    succs: list[Edge] = field(default_factory=list)
    preds: list[Edge] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Block({self.id}, {[e.kind for e in self.elements]})"


@dataclass(eq=False, slots=True)
class CFG:
    """A function's graph: `entry` has no predecessors, every return reaches `exit`."""

    entry: Block
    exit: Block
    blocks: list[Block]

    def reachable(self, exceptional: bool = True) -> list[Block]:
        """Blocks reachable from the entry, in reverse post-order."""
        seen: set[int] = set()
        order: list[Block] = []
        stack: list[tuple[Block, Iterator[Edge]]] = [(self.entry, iter(self.entry.succs))]
        seen.add(self.entry.id)
        while stack:
            block, it = stack[-1]
            advanced = False
            for edge in it:
                if not exceptional and edge.exceptional:
                    continue
                if edge.dst.id not in seen:
                    seen.add(edge.dst.id)
                    stack.append((edge.dst, iter(edge.dst.succs)))
                    advanced = True
                    break
            if not advanced:
                stack.pop()
                order.append(block)
        order.reverse()
        return order

    def returns(self) -> Iterator[tuple[Block, Element]]:
        """Every block ending in a `return` element, with that element."""
        for b in self.blocks:
            for el in b.elements:
                if el.kind == "return":
                    yield b, el


# Assertion and assumption macros (WDK, CRT, compiler) -> the argument that is the
# asserted condition.
ASSERTIONS = {
    "ASSERT": 0, "NT_ASSERT": 0, "NT_VERIFY": 0, "NT_FRE_ASSERT": 0, "PAGED_ASSERT": 0,
    "WDFVERIFY": 0, "assert": 0, "_ASSERT": 0, "_ASSERTE": 0,
    "NT_ANALYSIS_ASSUME": 0, "__analysis_assume": 0, "__assume": 0,
    "ASSERTMSG": 1, "NT_ASSERTMSG": 1, "NT_ASSERTMSGW": 1, "NT_VERIFYMSG": 1,
    "NT_VERIFYMSGW": 1, "NT_FRE_ASSERTMSG": 1,
    # `ASSERT3U(a, ==, b)`, read as `ASSERT3U(a == b)` (`preprocess._comparison_macros`).
    "ASSERT3U": 0, "ASSERT3S": 0, "ASSERT3P": 0, "ASSERT3B": 0, "VERIFY3U": 0,
    "VERIFY3S": 0, "VERIFY3P": 0, "VERIFY3B": 0, "ASSERTIRQL": 0,
}
# Routines that never return to their caller (DECLSPEC_NORETURN in the WDK and SDK
# headers; PsTerminateSystemThread ends the calling thread).
NO_RETURN = frozenset({
    "KeBugCheck", "KeBugCheckEx", "ExRaiseStatus", "RtlRaiseStatus", "ExRaiseAccessViolation",
    "ExRaiseDatatypeMisalignment", "PsTerminateSystemThread", "__fastfail", "RtlFailFast",
    "abort", "exit", "_exit", "ExitProcess", "ExitThread", "FatalExit",
})
# A project's own assertion macro: a one-argument call whose name says so (`DmfAssert(e)`,
# `MxAssert(e)`, `DBG_ASSERT(e)`).
_ASSERT_SUFFIXES = ("Assert", "ASSERT", "_assert")


def _called_name(expr: Expr | None) -> str | None:
    """The name a call expression calls directly (`F(...)`; not `obj->F(...)`), or None."""
    if expr is None or expr.kind != "call" or expr.children[0].kind != "name":
        return None
    return expr.children[0].text


def assertion(expr: Expr | None) -> Expr | None:
    """The condition of an assertion written as a statement (`NT_ASSERT(h != NULL)`,
    `ASSERTMSG("why", e)`), or None."""
    name = _called_name(expr)
    if expr is None or name is None:
        return None
    args = expr.args
    index = ASSERTIONS.get(name)
    if index is None and len(args) == 1 and name.endswith(_ASSERT_SUFFIXES):
        index = 0
    if index is None or index >= len(args):
        return None
    return args[index]


def constant_truth(expr: Expr | None) -> bool | None:
    """True/False for conditions that are constant (`1`, `TRUE`, `0`, `FALSE`), else None."""
    if expr is None:
        return True
    e = expr.strip()
    if e.kind == "number" and e.value is not None:
        return e.value != 0
    if e.kind == "name" and e.text in ("TRUE", "FALSE", "true", "false"):
        return e.text in ("TRUE", "true")
    return None


@dataclass(slots=True)
class _Jump:
    block: Block
    finally_depth: int


@dataclass(slots=True)
class _TryFrame:
    kind: str  # finally, except, catch
    finally_body: Stmt | None
    handler: Block | None
    leave: _Jump | None
    blocks_from: int  # index in blocks where the protected region starts
    ident: int


class _Builder:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.entry = self.new()
        self.exit = self.new()
        self.labels: dict[str, Block] = {}
        self.label_trys: dict[str, tuple[int, ...]] = {}
        self.breaks: list[_Jump] = []
        self.continues: list[_Jump] = []
        self.trys: list[_TryFrame] = []
        self.try_counter = 0
        self.finally_copies = 0

    def new(self) -> Block:
        b = Block(len(self.blocks))
        self.blocks.append(b)
        return b

    def link(self, src: Block | None, dst: Block, kind: str = "normal",
             cond: Expr | None = None, case: Expr | None = None) -> None:
        if src is None:
            return
        edge = Edge(src, dst, kind, cond, case)
        src.succs.append(edge)
        dst.preds.append(edge)

    def live(self, cur: Block | None) -> Block:
        # Code after a jump is unreachable but still gets a block of its own.
        return cur if cur is not None else self.new()

    # -- statements -----------------------------------------------------------------------
    def stmt(self, s: Stmt, cur: Block | None) -> Block | None:
        k = s.kind
        if k == "block":
            for c in s.children:
                cur = self.stmt(c, cur)
            return cur
        if k in ("empty", "other"):
            return cur
        if k == "expr":
            block = self.live(cur)
            asserted = assertion(s.expr)
            if asserted is not None:
                # `ASSERT(e);` is lowered as `if (!(e)) <stop>`: what follows runs only
                # where `e` holds (the developer's word that the other side never happens).
                after = self.new()
                truth = constant_truth(asserted)
                if truth is None:
                    self.cond(asserted, after, self.new(), block)
                elif truth:
                    self.link(block, after)
                return after
            block.elements.append(Element("expr", s.expr, start=s.start))
            if _called_name(s.expr) in NO_RETURN:
                return None  # what follows is unreachable
            return block
        if k == "decl":
            block = self.live(cur)
            for d in s.decls:
                block.elements.append(Element("decl", d.init, d, start=d.start))
            return block
        if k == "if":
            block = self.live(cur)
            then_b, after = self.new(), self.new()
            else_b = self.new() if len(s.children) > 1 else after
            truth = constant_truth(s.expr) if s.expr is not None else None
            if truth is None:
                self.cond(s.expr, then_b, else_b, block)
            else:
                self.link(block, then_b if truth else else_b)
            self.link(self.stmt(s.children[0], then_b), after)
            if len(s.children) > 1:
                self.link(self.stmt(s.children[1], else_b), after)
            return after
        if k == "while":
            head = self.new()
            self.link(cur, head) if cur is not None else None
            body, after = self.new(), self.new()
            self.loop_cond(s.expr, body, after, head)
            self.breaks.append(_Jump(after, len(self.trys)))
            self.continues.append(_Jump(head, len(self.trys)))
            self.link(self.stmt(s.children[0], body), head)
            self.breaks.pop()
            self.continues.pop()
            return after
        if k == "do":
            body, cond_b, after = self.new(), self.new(), self.new()
            self.link(cur, body) if cur is not None else None
            self.breaks.append(_Jump(after, len(self.trys)))
            self.continues.append(_Jump(cond_b, len(self.trys)))
            self.link(self.stmt(s.children[0], body), cond_b)
            self.breaks.pop()
            self.continues.pop()
            self.loop_cond(s.expr, body, after, cond_b)
            return after
        if k == "for":
            cur = self.stmt(s.children[0], cur)
            head, body, update, after = self.new(), self.new(), self.new(), self.new()
            self.link(self.live(cur), head)
            self.loop_cond(s.expr, body, after, head)
            self.breaks.append(_Jump(after, len(self.trys)))
            self.continues.append(_Jump(update, len(self.trys)))
            self.link(self.stmt(s.children[1], body), update)
            self.breaks.pop()
            self.continues.pop()
            if s.update is not None:
                update.elements.append(Element("expr", s.update, start=s.update.start))
            self.link(update, head)
            return after
        if k == "switch":
            return self.switch(s, cur)
        if k == "case":
            # A case label outside a switch body's top level: treat as straight-line code.
            for c in s.children:
                cur = self.stmt(c, cur)
            return cur
        if k == "break":
            if self.breaks:
                self.jump(cur, self.breaks[-1])
            return None
        if k == "continue":
            if self.continues:
                self.jump(cur, self.continues[-1])
            return None
        if k == "return":
            block = self.live(cur)
            block.elements.append(Element("return", s.expr, start=s.start))
            self.jump(block, _Jump(self.exit, 0))
            return None
        if k == "goto":
            target = self.labels.get(s.label)
            if target is None:
                target = self.labels[s.label] = self.new()
            trys = self.label_trys.get(s.label, ())
            depth = 0
            for i, frame in enumerate(self.trys):
                if frame.ident in trys:
                    depth = i + 1
            self.jump(self.live(cur), _Jump(target, depth))
            return None
        if k == "label":
            target = self.labels.get(s.label)
            if target is None:
                target = self.labels[s.label] = self.new()
            self.link(cur, target)
            cur2: Block | None = target
            for c in s.children:
                cur2 = self.stmt(c, cur2)
            return cur2
        if k == "seh_try":
            return self.seh_try(s, cur)
        if k == "seh_leave":
            for frame in reversed(self.trys):
                if frame.leave is not None:
                    self.jump(self.live(cur), frame.leave)
                    break
            return None
        if k == "try":
            return self.cxx_try(s, cur)
        return cur

    def jump(self, cur: Block | None, target: _Jump) -> None:
        """Leave `cur` for `target`, running every `__finally` crossed on the way."""
        if cur is None:
            return
        crossing = self.trys[target.finally_depth:]
        saved = self.trys
        for i in range(len(crossing) - 1, -1, -1):
            frame = crossing[i]
            if frame.kind == "finally" and frame.finally_body is not None:
                self.trys = saved[: target.finally_depth + i]
                start = self.new()
                self.link(cur, start)
                self.finally_copies += 1
                if self.finally_copies > 2000:
                    cur = start
                    continue
                end = self.stmt(frame.finally_body, start)
                if end is None:
                    self.trys = saved
                    return
                cur = end
        self.trys = saved
        self.link(cur, target.block)

    def cond(self, e: Expr | None, t: Block, f: Block, cur: Block) -> None:
        """Branch from `cur` to `t` or `f` on `e`, splitting `&&`, `||` and `!`."""
        if e is None:
            self.link(cur, t)
            return
        e = e.strip() if e.kind == "cast" and e.text.upper() in ("BOOLEAN", "BOOL") else e
        if e.kind == "unary" and e.op == "!":
            self.cond(e.children[0], f, t, cur)
            return
        if e.kind == "binary" and e.op in ("&&", "||"):
            mid = self.new()
            if e.op == "&&":
                self.cond(e.children[0], mid, f, cur)
            else:
                self.cond(e.children[0], t, mid, cur)
            self.cond(e.children[1], t, f, mid)
            return
        cur.elements.append(Element("cond", e, start=e.start))
        self.link(cur, t, "true", e)
        self.link(cur, f, "false", e)

    def loop_cond(self, e: Expr | None, body: Block, after: Block, head: Block) -> None:
        truth = constant_truth(e)
        if truth is None:
            self.cond(e, body, after, head)
        else:
            self.link(head, body if truth else after)

    def switch(self, s: Stmt, cur: Block | None) -> Block | None:
        block = self.live(cur)
        if s.expr is not None:
            block.elements.append(Element("switch", s.expr, start=s.expr.start))
        after = self.new()
        self.breaks.append(_Jump(after, len(self.trys)))
        body = s.children[0] if s.children else Stmt("block", s.start, s.end)
        items = body.children if body.kind == "block" else [body]
        has_default = False
        flow: Block | None = None
        for item in items:
            if item.kind == "case":
                entry = self.new()
                self.link(flow, entry)
                if item.expr is None:
                    has_default = True
                    self.link(block, entry, "default", s.expr)
                else:
                    self.link(block, entry, "case", s.expr, item.expr)
                flow = entry
                for c in item.children:
                    flow = self.stmt(c, flow)
            else:
                flow = self.stmt(item, flow)
        self.link(flow, after)
        if not has_default:
            self.link(block, after, "default", s.expr)
        self.breaks.pop()
        return after

    def seh_try(self, s: Stmt, cur: Block | None) -> Block | None:
        body = s.children[0]
        handler_stmt = s.children[1] if len(s.children) > 1 else None
        self.try_counter += 1
        ident = self.try_counter
        after = self.new()
        start = self.new()
        self.link(cur, start) if cur is not None else None
        if handler_stmt is not None and handler_stmt.kind == "seh_finally":
            fin_body = handler_stmt.children[0] if handler_stmt.children else None
            frame = _TryFrame("finally", fin_body, None, None, len(self.blocks), ident)
            # __leave runs the __finally, then continues after the statement.
            frame.leave = _Jump(after, len(self.trys))
            self.trys.append(frame)
            end = self.stmt(body, start)
            # Falling off the end of the __try runs the __finally too.
            self.jump(end, _Jump(after, len(self.trys) - 1))
            self.trys.pop()
            return after
        handler = self.new()
        frame = _TryFrame("except", None, handler, _Jump(after, len(self.trys)),
                          len(self.blocks), ident)
        self.trys.append(frame)
        first = len(self.blocks)
        end = self.stmt(body, start)
        self.trys.pop()
        self.link(end, after)
        for b in [start, *self.blocks[first:]]:
            if b is not handler and b is not after:
                self.link(b, handler, "exception")
        hend = self.stmt(handler_stmt.children[0], handler) if (
            handler_stmt is not None and handler_stmt.children) else handler
        self.link(hend, after)
        return after

    def cxx_try(self, s: Stmt, cur: Block | None) -> Block | None:
        after, start = self.new(), self.new()
        self.link(cur, start) if cur is not None else None
        first = len(self.blocks)
        end = self.stmt(s.children[0], start)
        self.link(end, after)
        protected = [start, *self.blocks[first:]]
        for catch in s.children[1:]:
            handler = self.new()
            for b in protected:
                self.link(b, handler, "exception")
            hend = self.stmt(catch.children[0], handler) if catch.children else handler
            self.link(hend, after)
        return after


def _label_scopes(body: Stmt) -> dict[str, tuple[int, ...]]:
    """For each label, the `__try` statements (numbered in build order) that enclose it."""
    out: dict[str, tuple[int, ...]] = {}
    counter = 0
    stack: list[tuple[Stmt, tuple[int, ...]]] = [(body, ())]
    # Pre-order with the same numbering as the builder (which numbers trys as it meets them).
    order: list[tuple[Stmt, tuple[int, ...]]] = []
    while stack:
        s, trys = stack.pop()
        order.append((s, trys))
        inner = trys
        if s.kind == "seh_try":
            counter += 1
            inner = (*trys, counter)
        for c in reversed(s.children):
            stack.append((c, inner if s.kind == "seh_try" and c is s.children[0] else trys))
        if s.kind == "label":
            out[s.label] = trys
    return out


def build_cfg(body: Stmt) -> CFG:
    """The CFG of a function body."""
    b = _Builder()
    b.label_trys = _label_scopes(body)
    start = b.new()
    b.link(b.entry, start)
    end = b.stmt(body, start)
    b.link(end, b.exit)
    return CFG(b.entry, b.exit, b.blocks)

"""Value analysis: what an argument can be at a call, on each path, and where it was set.

Any rule may ask `file_values(fir, knowledge).at_call(call)` for a `CallValues` and then
`values(arg)` (the integer values an argument expression can have), `object_attributes(arg)`
(the `Attributes` of the `OBJECT_ATTRIBUTES` an argument points at) or `handle_opens(arg)`
(the calls that opened the handle an argument holds).

How it works:
- **Reaching definitions** over the function's CFG with the shared solver: every local
  variable, parameter, and field of a local structure (`oa.Attributes`, `p->Attributes`)
  maps to the set of definitions that reach a point. A variable set differently on two
  branches has two definitions, hence two values.
- **Evaluation** of a definition's right-hand side in the state where it happens, so values
  follow chains of assignments. Values are *known bits* (`Bits`: which bits are surely 1,
  which surely 0), so `flags & ~OBJ_KERNEL_HANDLE` is known to lack the flag even when
  `flags` is unknown, and `x | OBJ_KERNEL_HANDLE` is known to have it. Operators: `|`,
  `&`, `^`, `~`, `!`, `?:`, casts, parentheses, comma, and arithmetic on fully known values.
- **Names**: locals and parameters (above), the WDK constants of `knowledge/constants.toml`,
  `const` globals of the file; the file's object-like `#define`s are already expanded by
  the frontend (the expression's `via` names the macro).
- **OBJECT_ATTRIBUTES**: the initializers of `constants.toml` (`InitializeObjectAttributes
  (&oa, name, ATTRS, root, sd)`, `RTL_CONSTANT_OBJECT_ATTRIBUTES`), brace initializers and
  direct writes `oa.Attributes = ...` / `|= ...` define `oa.Attributes`. A call that may
  write the structure (its address given to an unknown routine) makes it unknown.
- **Parameters**: `ParamSource` answers what a parameter can be. The default looks at every
  call of the function in the same file and evaluates the argument there; a whole-program
  model can supply another source (`FileValues(..., params=...)`).
- **Unknown stays unknown**: a value with no known bits never makes a rule fire.

Only the functions a rule asks about are analyzed (lazily, cached per file).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ddilint.analyzer.cfg import Block, Edge, Element
from ddilint.analyzer.dataflow import join_reached, solve
from ddilint.analyzer.ir import CallSite, Decl, Expr, FileIR, Function
from ddilint.analyzer.pickling import compact_pickle
from ddilint.knowledge import Knowledge, Routine
from ddilint.knowledge.constants import AttributesInitializer, Constants, load_constants

MASK = 0xFFFFFFFF
MAX_VALUES = 32  # more possible values than this are merged into one (their common bits)
MAX_DEPTH = 24  # nesting of definitions followed while evaluating
MAX_PARAM_DEPTH = 3  # caller levels followed for parameter values
# Definitions of one variable that reach one place. Past this many the variable's value
# there is unknown: a function of thousands of `if (...) { x = ...; }` in a row (generated
# code) gave every join of the chain a set of all the definitions before it, which grew as
# the square of the function (8 GB for 60,000 of them).
MAX_REACHING_DEFS = 512


# -- values -------------------------------------------------------------------------------
@compact_pickle
@dataclass(frozen=True, slots=True)
class Origin:
    """Where a value was set: the defining expression's span and how it was set.

    kind: `arg` (written in the call's argument), `init` (an OBJECT_ATTRIBUTES initializer's
    argument, `detail` names the routine), `assign`, `decl`, `global`, `param` (a caller's
    argument; `detail` names the caller), `unknown`."""

    kind: str
    start: int
    end: int
    via: str = ""
    detail: str = ""
    expr: Expr | None = field(default=None, compare=False, hash=False)


@compact_pickle
@dataclass(frozen=True, slots=True)
class Bits:
    """One possible value as known bits: `ones` surely set, `zeros` surely clear."""

    ones: int
    zeros: int
    origin: Origin
    # Other places that contributed to the value (operands of `|`, `&`, ...), at most 4.
    others: tuple[Origin, ...] = field(default=(), compare=False, hash=False)

    @property
    def origins(self) -> tuple[Origin, ...]:
        """Every known place that contributed to the value, the main one first."""
        return (self.origin, *self.others)

    @property
    def known(self) -> bool:
        return (self.ones | self.zeros) == MASK

    @property
    def value(self) -> int | None:
        return self.ones if self.known else None

    def lacks(self, flags: int) -> bool:
        """Every bit of `flags` is surely clear."""
        return flags != 0 and self.zeros & flags == flags

    def has(self, flags: int) -> bool:
        """Every bit of `flags` is surely set."""
        return flags != 0 and self.ones & flags == flags


Values = frozenset[Bits]


def known(value: int, origin: Origin) -> Bits:
    v = value & MASK
    return Bits(v, ~v & MASK, origin)


def unknown(origin: Origin) -> Bits:
    return Bits(0, 0, origin)




def _merge(values: Iterable[Bits]) -> Bits:
    """One value with the bits every one of `values` agrees on."""
    it = iter(values)
    first = next(it)
    ones, zeros = first.ones, first.zeros
    for b in it:
        ones &= b.ones
        zeros &= b.zeros
    return Bits(ones, zeros, first.origin)


def _cap(values: set[Bits]) -> Values:
    if len(values) > MAX_VALUES:
        return frozenset({_merge(sorted(values, key=lambda b: b.origin.start))})
    return frozenset(values)


def _pick_origin(op: str, a: Bits, b: Bits, origin: Origin) -> Origin:
    """The origin a combined value reports: the operand that decided the bits (the one
    that set bits the other lacks for `|`, cleared bits for `&`), else the operand that
    came from elsewhere (a variable's definition) rather than the current expression."""
    if op == "|":
        a_more, b_more = a.ones & ~b.ones, b.ones & ~a.ones
    elif op == "&":
        a_more, b_more = a.zeros & ~b.zeros, b.zeros & ~a.zeros
    else:
        a_more = b_more = 0
    if a_more and not b_more:
        return a.origin
    if b_more and not a_more:
        return b.origin
    if a.origin != origin and a.origin.kind != "unknown":
        return a.origin
    return b.origin if b.origin.kind != "unknown" else origin


def _binary(op: str, a: Bits, b: Bits, origin: Origin) -> Bits:
    r = _binary_bits(op, a, b, origin)
    others: list[Origin] = []
    for o in (*a.origins, *b.origins):
        if o != r.origin and o not in others and o.kind != "unknown":
            others.append(o)
    return Bits(r.ones, r.zeros, r.origin, tuple(others[:4]))


def _binary_bits(op: str, a: Bits, b: Bits, origin: Origin) -> Bits:
    o = _pick_origin(op, a, b, origin)
    if op == "|":
        return Bits(a.ones | b.ones, a.zeros & b.zeros, o)
    if op == "&":
        return Bits(a.ones & b.ones, a.zeros | b.zeros, o)
    if op == "^":
        return Bits((a.ones & b.zeros) | (a.zeros & b.ones),
                    (a.ones & b.ones) | (a.zeros & b.zeros), o)
    x, y = a.value, b.value
    if x is None or y is None:
        return unknown(o)
    r: int | None
    if op == "+":
        r = x + y
    elif op == "-":
        r = x - y
    elif op == "*":
        r = x * y
    elif op == "<<":
        r = x << y if y < 32 else 0
    elif op == ">>":
        r = x >> y
    elif op in ("/", "%"):
        r = (x // y if op == "/" else x % y) if y else None
    elif op in ("==", "!=", "<", ">", "<=", ">=", "&&", "||"):
        r = int({"==": x == y, "!=": x != y, "<": x < y, ">": x > y, "<=": x <= y,
                 ">=": x >= y, "&&": bool(x and y), "||": bool(x or y)}[op])
    else:
        r = None
    return unknown(o) if r is None else known(r, o)


def combine(op: str, left: Values, right: Values, origin: Origin) -> Values:
    """The values of `left op right`."""
    if len(left) * len(right) > MAX_VALUES:
        left = frozenset({_merge(left)})
        right = frozenset({_merge(right)})
    return _cap({_binary(op, a, b, origin) for a in left for b in right})


# -- definitions --------------------------------------------------------------------------
@dataclass(eq=False, slots=True)
class Def:
    """A definition of a tracked variable (`x`, `oa.Attributes`, `*p`, `*p.Attributes`).

    kind: assign (`rhs`, `op` `=` or `|=`...), decl (`rhs` the initializer or None), init
    (an OBJECT_ATTRIBUTES initializer; `rhs` its attributes argument, `call` the call),
    out (its address given to `call` as argument `arg_index`), clobber (changed in a way not
    followed), param (parameter `arg_index` at entry), entry (value from before the
    function: unknown), many (one of more definitions than are followed: unknown,
    `FunctionValues.many_defs`)."""

    var: str
    kind: str
    start: int
    end: int
    rhs: Expr | None = None
    op: str = "="
    call: Expr | None = None
    arg_index: int = -1
    element: Element | None = None


@dataclass(slots=True)
class Read:
    """A read of a tracked variable (taking its address counts as a read)."""

    var: str
    expr: Expr


Event = Def | Read
State = dict[str, frozenset[Def]] | None  # None: not reached


def object_key(arg: Expr) -> str | None:
    """The tracked object an argument points at: `&oa` -> `oa`, `p` -> `*p`."""
    e = arg.strip()
    if e.kind == "unary" and e.op == "&":
        inner = e.children[0].strip()
        if inner.kind == "name":
            return inner.text
        return None
    if e.kind == "name":
        return "*" + e.text
    return None


def lvalue_key(target: Expr) -> str | None:
    """The tracked variable an assignment target names, or None."""
    t = target.strip()
    if t.kind == "name":
        return t.text
    if t.kind == "unary" and t.op == "*":
        inner = t.children[0].strip()
        return "*" + inner.text if inner.kind == "name" else None
    if t.kind == "field":
        base = t.children[0].strip()
        if t.op == "." and base.kind == "name":
            return f"{base.text}.{t.text}"
        if t.op == "->" and base.kind == "name":
            return f"*{base.text}.{t.text}"
        if t.op == "->" and base.kind == "unary" and base.op == "&":
            inner = base.children[0].strip()  # `(&oa)->Attributes`, from macro bodies
            return f"{inner.text}.{t.text}" if inner.kind == "name" else None
        if t.op == "." and base.kind == "unary" and base.op == "*":
            inner = base.children[0].strip()
            return f"*{inner.text}.{t.text}" if inner.kind == "name" else None
    return None


def _base(var: str) -> str:
    """The local a tracked variable belongs to: `*p.Attributes` -> `p`."""
    return var.lstrip("*").split(".", 1)[0]


class ParamSource(Protocol):
    """Answers what a function's parameter can be (the seam for a whole-program model)."""

    def param_values(self, fn: Function, index: int, depth: int) -> Values | None:
        """The possible values of parameter `index` of `fn`, or None when unknown."""
        ...


# -- evaluation ---------------------------------------------------------------------------
class _Scope:
    """Evaluates expressions; subclasses say which names are tracked variables."""

    owner: FileValues

    def tracked(self, var: str) -> bool:
        return False

    def lookup(self, var: str, state: State, origin: Origin, depth: int) -> Values:
        return frozenset({unknown(origin)})

    def eval(self, e: Expr, state: State, origin: Origin, depth: int = 0) -> Values:
        """The values `e` can have in `state`; constants get `origin`."""
        if depth > MAX_DEPTH:
            return frozenset({unknown(origin)})
        d = depth + 1
        k = e.kind
        if k == "number":
            return frozenset({known(e.value, origin) if e.value is not None
                              else unknown(origin)})
        if k == "name":
            if self.tracked(e.text):
                return self.lookup(e.text, state, origin, d)
            value = self.owner.constants.get(e.text)
            if value is not None:
                return frozenset({known(value, origin)})
            return self.owner.global_values(e.text, origin, d)
        if k == "field" or (k == "unary" and e.op == "*"):
            key = lvalue_key(e)
            if key is not None and self.tracked(key):
                return self.lookup(key, state, origin, d)
            return frozenset({unknown(origin)})
        if k == "cast":
            if not e.children:
                return frozenset({unknown(origin)})
            return self.eval(e.children[0], state, origin, d)
        if k == "binary" and len(e.children) == 2:
            left = self.eval(e.children[0], state, origin, d)
            right = self.eval(e.children[1], state, origin, d)
            return combine(e.op, left, right, origin)
        if k == "unary" and e.children and e.op != "&":
            inner = self.eval(e.children[0], state, origin, d)
            return frozenset(_unary(e.op, b, origin) for b in inner)
        if k == "cond" and len(e.children) == 3:
            test = self.eval(e.children[0], state, origin, d)
            truth = {b.value != 0 for b in test} if all(b.known for b in test) else {
                True, False}
            out: set[Bits] = set()
            if True in truth:
                out |= self.eval(e.children[1], state, origin, d)
            if False in truth:
                out |= self.eval(e.children[2], state, origin, d)
            return _cap(out)
        if k == "comma" and e.children:
            return self.eval(e.children[-1], state, origin, d)
        if k == "assign" and len(e.children) == 2 and e.op == "=":
            return self.eval(e.children[1], state, origin, d)
        return frozenset({unknown(origin)})


class _FileScope(_Scope):
    """File scope: only constants and const globals (for global initializers)."""

    def __init__(self, owner: FileValues) -> None:
        self.owner = owner


# -- per function -------------------------------------------------------------------------
class FunctionValues(_Scope):
    """Reaching definitions of one function, and evaluation of expressions in it."""

    def __init__(self, fn: Function, owner: FileValues) -> None:
        self.fn = fn
        self.owner = owner
        self.locals: set[str] = {p.name for p in fn.params if p.name}
        self.declared: set[str] = set()  # locals declared in the body (not parameters)
        self.pointer_params = {p.name for p in fn.params if _pointer_type(p.type_text)}
        self.escaped: set[str] = set()
        self._events: dict[int, list[Event]] = {}
        self._entry_defs: dict[str, Def] = {}
        # Per variable that had too many definitions reaching one place: the one
        # definition that stands for all of them from there on (its value is unknown).
        self.too_many: dict[str, frozenset[Def]] = {}
        self._memo: dict[int, Values] = {}
        self._active: set[int] = set()
        cfg = fn.cfg
        self._scan(cfg.blocks)
        self.param_defs = {p.name: Def(p.name, "param", fn.name_start, fn.name_start,
                                       arg_index=p.index) for p in fn.params if p.name}
        solution = solve(cfg, _ReachingDefs(self))
        # The states at block entries (the `Solution` holds its analysis, which holds this
        # object: kept, it would be a cycle the collector has to find).
        self.entry_states: dict[int, State] = solution.entry
        self.before: dict[int, State] = {}
        self.calls: dict[int, list[tuple[Expr, Element]]] = {}
        for block in cfg.blocks:
            if block.id not in solution.entry:
                continue
            for el, state in solution.before_each(block):
                self.before[id(el)] = state
                if el.expr is not None:
                    for c in el.expr.calls():
                        self.calls.setdefault(c.start, []).append((c, el))

    # -- building -----------------------------------------------------------------------
    def _scan(self, blocks: list[Block]) -> None:
        """Locals, field keys written anywhere, and variables whose address escapes."""
        self.fields: set[str] = set()
        inits = self.owner.constants.initializers
        for block in blocks:
            for el in block.elements:
                if el.decl is not None:
                    self.locals.add(el.decl.name)
                    self.declared.add(el.decl.name)
                    if el.decl.pointer or _pointer_type(el.decl.type_text):
                        self.pointer_params.add(el.decl.name)
                    if el.decl.static:
                        self.escaped.add(el.decl.name)
                    if _attributes_from_init(el.decl, inits) is not None:
                        self.fields.add(el.decl.name + ".Attributes")
                if el.expr is None:
                    continue
                for e, parent in _walk_with_parent(el.expr):
                    if e.kind == "assign":
                        key = lvalue_key(e.children[0])
                        if key is not None and "." in key:
                            self.fields.add(key)
                    elif e.kind == "call":
                        spec = inits.get(e.callee or "")
                        if spec is not None and spec.object_param is not None and (
                                spec.object_param < len(e.args)):
                            obj = object_key(e.args[spec.object_param])
                            if obj is not None:
                                self.fields.add(obj + ".Attributes")
                    elif e.kind == "unary" and e.op == "&" and (parent is None or (
                            parent.kind != "call" and not (
                                parent.kind == "field" and parent.op == "->"))):
                        inner = e.children[0].strip()
                        if inner.kind == "name":
                            self.escaped.add(inner.text)
                    elif e.kind == "lambda":
                        # A lambda may capture locals by reference: give up on all of them.
                        self.escaped.update(self.locals)

    def entry_def(self, var: str) -> Def:
        d = self._entry_defs.get(var)
        if d is None:
            d = self._entry_defs[var] = Def(var, "entry", self.fn.body_start, self.fn.body_start)
        return d

    def many_defs(self, var: str) -> frozenset[Def]:
        """The definitions of `var` where more than `MAX_REACHING_DEFS` reach one place: one
        of unknown value, which absorbs every other (the first time, a DDI905 notice)."""
        got = self.too_many.get(var)
        if got is None:
            fn = self.fn
            got = self.too_many[var] = frozenset(
                {Def(var, "many", fn.body_start, fn.body_start)})
            self.owner.fir.limits[(fn.name_start, (
                f"values not followed in {fn.qualname}: `{var}` has more than "
                f"{MAX_REACHING_DEFS} definitions that reach one place"))] = None
        return got

    def tracked(self, var: str) -> bool:
        return _base(var) in self.locals

    def events(self, el: Element) -> list[Event]:
        """What `el` reads and defines, in evaluation order (computed once per element)."""
        ev = self._events.get(id(el))
        if ev is None:
            ev = []
            if el.kind == "decl" and el.decl is not None:
                self._decl_events(el, el.decl, ev)
            elif el.expr is not None:
                self._expr_events(el.expr, el, ev)
            self._events[id(el)] = ev
        return ev

    def _clobber_fields(self, obj: str, start: int, el: Element, out: list[Event]) -> None:
        prefix = obj + "."
        for key in self.fields:
            if key.startswith(prefix):
                out.append(Def(key, "clobber", start, start, element=el))

    def _decl_events(self, el: Element, decl: Decl, out: list[Event]) -> None:
        if decl.init is not None:
            self._expr_events(decl.init, el, out)
        out.append(Def(decl.name, "decl", decl.start, decl.end, rhs=decl.init, element=el))
        self._clobber_fields(decl.name, decl.start, el, out)
        attrs = _attributes_from_init(decl, self.owner.constants.initializers)
        if attrs is not None:
            out.append(Def(decl.name + ".Attributes", "init", attrs.start, attrs.end, rhs=attrs,
                           call=decl.init, element=el))

    def _expr_events(self, e: Expr, el: Element, out: list[Event]) -> None:
        stack: list[tuple[Expr, bool]] = [(e, False)]
        # Iterative post-order-ish walk: children first where evaluation order needs it.
        while stack:
            node, done = stack.pop()
            k = node.kind
            if done:
                self._after(node, el, out)
                continue
            if k == "lambda":
                continue
            if k == "name":
                if self.tracked(node.text):
                    out.append(Read(node.text, node))
                continue
            if k == "assign":
                target, rhs = node.children[0], node.children[1]
                key = lvalue_key(target)
                stack.append((node, True))
                # Reads inside the target (`a[i] = ...`, `p->x = ...`) happen too.
                t = target.strip()
                if t.kind != "name":
                    for c in reversed(t.children):
                        stack.append((c, False))
                stack.append((rhs, False))
                if node.op != "=" and key is not None and self.tracked(key):
                    out.append(Read(key, target))
                continue
            if k in ("unary", "postfix") and node.op in ("++", "--"):
                key = lvalue_key(node.children[0])
                if key is not None and self.tracked(key):
                    out.append(Read(key, node))
                    out.append(Def(key, "clobber", node.start, node.end, element=el))
                continue
            if k == "unary" and node.op == "&":
                inner = node.children[0].strip()
                key = lvalue_key(inner)
                if key is not None and self.tracked(key):
                    out.append(Read(key, node))
                else:
                    stack.append((inner, False))
                continue
            if k == "call":
                stack.append((node, True))
            for c in reversed(node.children):
                stack.append((c, False))

    def _after(self, node: Expr, el: Element, out: list[Event]) -> None:
        if node.kind == "assign":
            key = lvalue_key(node.children[0])
            if key is None or not self.tracked(key):
                return
            out.append(Def(key, "assign", node.start, node.end, rhs=node.children[1],
                           op=node.op, element=el))
            self._clobber_fields(key, node.start, el, out)
            if "." not in key:
                attrs = _attributes_from_value(node.children[1],
                                               self.owner.constants.initializers)
                if attrs is not None and key + ".Attributes" in self.fields:
                    out.append(Def(key + ".Attributes", "init", attrs.start, attrs.end,
                                   rhs=attrs, call=node.children[1], element=el))
            return
        if node.kind != "call":
            return
        name = node.callee or ""
        args = node.args
        spec = self.owner.constants.initializers.get(name)
        if spec is not None and spec.object_param is not None and (
                max(spec.object_param, spec.attributes_param) < len(args)):
            obj = object_key(args[spec.object_param])
            if obj is not None and self.tracked(obj):
                a = args[spec.attributes_param]
                out.append(Def(obj + ".Attributes", "init", a.start, a.end, rhs=a, call=node,
                               element=el))
            return
        routine = self.owner.routine(name)
        cpp = self.owner.fir.language == "cpp"
        for i, a in enumerate(args):
            direction = routine.params[i][1] if routine is not None and i < len(
                routine.params) else None
            if direction == "in":
                continue
            s = a.strip()
            if s.kind == "unary" and s.op == "&":
                key = lvalue_key(s.children[0])
                if key is not None and self.tracked(key):
                    out.append(Def(key, "out", node.start, node.end, call=node, arg_index=i,
                                   element=el))
                    self._clobber_fields(key, node.start, el, out)
            elif s.kind == "name" and self.tracked(s.text):
                if s.text in self.pointer_params:
                    out.append(Def("*" + s.text, "out", node.start, node.end, call=node,
                                   arg_index=i, element=el))
                    self._clobber_fields("*" + s.text, node.start, el, out)
                elif cpp and routine is None:
                    # A C++ callee may take it by reference.
                    out.append(Def(s.text, "clobber", node.start, node.end, element=el))
                    self._clobber_fields(s.text, node.start, el, out)

    # -- evaluation -----------------------------------------------------------------------
    def state_before(self, el: Element | None) -> State:
        return self.before.get(id(el)) if el is not None else None

    def defs_of(self, var: str, state: State) -> frozenset[Def]:
        if state is None:
            return frozenset()
        return state.get(var) or frozenset({self.entry_def(var)})

    def lookup(self, var: str, state: State, origin: Origin, depth: int) -> Values:
        """The values of a tracked variable in `state`."""
        if _base(var) in self.escaped or state is None:
            return frozenset({unknown(origin)})
        out: set[Bits] = set()
        for d in self.defs_of(var, state):
            out |= self.def_values(d, depth + 1)
        return _cap(out) if out else frozenset({unknown(origin)})

    def def_values(self, d: Def, depth: int = 0) -> Values:
        """The values a definition gives its variable."""
        memo = self._memo.get(id(d))
        if memo is not None:
            return memo
        rhs = d.rhs
        origin = Origin(d.kind if d.kind in ("assign", "decl", "init") else "unknown",
                        rhs.start if rhs is not None else d.start,
                        rhs.end if rhs is not None else d.end,
                        rhs.via if rhs is not None else "",
                        (d.call.callee or "") if d.call is not None else "", rhs)
        if id(d) in self._active or depth > MAX_DEPTH:
            return frozenset({unknown(origin)})
        self._active.add(id(d))
        try:
            result: Values
            if d.kind == "param":
                got = self.owner.params.param_values(self.fn, d.arg_index, 0)
                result = got if got is not None else frozenset({unknown(origin)})
            elif d.kind in ("assign", "decl", "init") and rhs is not None:
                state = self.state_before(d.element)
                result = self.eval(rhs, state, origin, depth + 1)
                if d.kind == "assign" and d.op != "=" and len(d.op) >= 2:
                    old = self.lookup(d.var, state, origin, depth + 1)
                    result = combine(d.op[:-1], old, result, origin)
            else:
                result = frozenset({unknown(origin)})
        finally:
            self._active.discard(id(d))
        self._memo[id(d)] = result
        return result

    def value_at(self, el: Element, e: Expr, kind: str = "arg") -> Values:
        """The values of `e` evaluated just before element `el`."""
        state = self.state_before(el)
        origin = Origin(kind, e.start, e.end, e.via, "", e)
        if state is None:
            return frozenset({unknown(origin)})
        return self.eval(e, state, origin)

    def locate(self, site: CallSite) -> tuple[Expr, Element] | None:
        """The call expression of a call site in this function's CFG, with its element."""
        candidates = self.calls.get(site.start, [])
        for c, el in candidates:
            if c.callee == site.callee:
                return c, el
        for lst in self.calls.values():
            for c, el in lst:
                if c.callee != site.callee:
                    continue
                fn = c.children[0] if c.children else None
                if fn is not None and (fn.start == site.name_start or
                                       c.start <= site.name_start < c.end):
                    return c, el
        return None


def _pointer_type(type_text: str) -> bool:
    """`PHANDLE`, `POBJECT_ATTRIBUTES`, `HANDLE *`: a pointer by the WDK naming habit."""
    t = type_text.replace("const ", "").strip()
    return "*" in t or (len(t) > 1 and t[0] == "P" and t[1].isupper())


def _unary(op: str, b: Bits, origin: Origin) -> Bits:
    if op == "~":
        return Bits(b.zeros, b.ones, b.origin, b.others)
    if op == "+":
        return b
    if op == "-":
        v = b.value
        return known(-v, b.origin) if v is not None else unknown(b.origin)
    if op == "!":
        if b.ones:
            return known(0, b.origin)
        if b.known:
            return known(1, b.origin)
        return unknown(b.origin)
    return unknown(origin)


def _walk_with_parent(e: Expr) -> Iterator[tuple[Expr, Expr | None]]:
    """Every node with its parent (casts are skipped over: the parent of `(PVOID)&x` is
    what holds the cast)."""
    stack: list[tuple[Expr, Expr | None]] = [(e, None)]
    while stack:
        node, parent = stack.pop()
        yield node, parent
        if node.kind == "lambda":
            continue
        up = parent if node.kind == "cast" else node
        for c in node.children:
            stack.append((c, up))


def _attributes_from_value(value: Expr, inits: Mapping[str, AttributesInitializer]) -> Expr | None:
    """The Attributes of an OBJECT_ATTRIBUTES made by `value` (an initializer call)."""
    v = value.strip()
    if v.kind == "call":
        spec = inits.get(v.callee or "")
        if spec is not None and spec.object_param is None and spec.attributes_param < len(
                v.args):
            return v.args[spec.attributes_param]
    return None


def _attributes_from_init(decl: Decl, inits: Mapping[str, AttributesInitializer]) -> Expr | None:
    """The Attributes given in a declaration's initializer, if it sets them."""
    init = decl.init
    if init is None:
        return None
    from_call = _attributes_from_value(init, inits)
    if from_call is not None:
        return from_call
    if init.kind == "init" and "OBJECT_ATTRIBUTES" in decl.type_text and not decl.pointer:
        for c in init.children:
            if c.kind == "other" and c.op == "designated" and c.text.strip(". ") == (
                    "Attributes") and c.children:
                return c.children[0]
        plain = [c for c in init.children if not (c.kind == "other" and c.op == "designated")]
        if len(plain) == len(init.children) and len(plain) >= 4:
            return plain[3]
    return None


class _ReachingDefs:
    """The reaching-definitions lattice for the shared solver."""

    def __init__(self, fv: FunctionValues) -> None:
        self.fv = fv

    def initial(self) -> State:
        return {name: frozenset({d}) for name, d in self.fv.param_defs.items()}

    def bottom(self) -> State:
        return None

    def join(self, a: State, b: State) -> State:
        return join_reached(a, b, self._merge)

    def _merge(self, a: dict[str, frozenset[Def]], b: dict[str, frozenset[Def]]
               ) -> dict[str, frozenset[Def]]:
        fv = self.fv
        out = dict(a)
        for var, defs in b.items():
            mine = out.get(var)
            if mine is None:
                out[var] = self._capped(var, defs | {fv.entry_def(var)})
            elif mine is not defs:
                out[var] = self._capped(var, mine | defs)
        for var in a:
            if var not in b:
                out[var] = self._capped(var, out[var] | {fv.entry_def(var)})
        return out

    def _capped(self, var: str, defs: frozenset[Def]) -> frozenset[Def]:
        """`defs`, or the one unknown definition once they are too many (`many_defs`)."""
        many = self.fv.too_many.get(var)
        if many is not None and not many.isdisjoint(defs):
            return many
        if len(defs) > MAX_REACHING_DEFS:
            return self.fv.many_defs(var)
        return defs

    def transfer(self, element: Element, state: State) -> State:
        if state is None:
            return None
        events = self.fv.events(element)
        new: dict[str, frozenset[Def]] | None = None
        for ev in events:
            if isinstance(ev, Def):
                if new is None:
                    new = dict(state)
                new[ev.var] = frozenset({ev})
        return new if new is not None else state

    def edge(self, edge: Edge, state: State) -> State:
        return state


# -- per file -----------------------------------------------------------------------------

@dataclass(slots=True)
class HandleOpen:
    """A call that opened a handle: the routine, the call, and its DesiredAccess values."""

    routine: Routine
    call: Expr
    function: Function
    access: Values


@dataclass(slots=True)
class CallValues:
    """Questions about one call's arguments."""

    owner: FileValues
    fv: FunctionValues
    call: Expr
    element: Element

    def values(self, arg: Expr) -> Values:
        """The values an argument can have at this call."""
        return self.fv.value_at(self.element, arg)

    def object_attributes(self, arg: Expr) -> Values:
        """The Attributes of the OBJECT_ATTRIBUTES that `arg` points at."""
        obj = object_key(arg)
        origin = Origin("unknown", arg.start, arg.end, arg.via)
        if obj is None or not self.fv.tracked(obj):
            return frozenset({unknown(origin)})
        state = self.fv.state_before(self.element)
        return self.fv.lookup(obj + ".Attributes", state, origin, 0)

    def handle_opens(self, arg: Expr) -> list[HandleOpen]:
        """The calls that opened the handle `arg` holds (empty when unknown)."""
        return self.owner.handle_opens(self.fv, arg, self.fv.state_before(self.element), 0)


@dataclass(eq=False)
class FileValues:
    """Value analysis of one file, built function by function on demand."""

    fir: FileIR
    knowledge: Knowledge
    constants: Constants = field(default_factory=load_constants)
    params: ParamSource = field(init=False)
    _functions: dict[int, FunctionValues] = field(default_factory=dict)
    _globals: dict[str, Decl] | None = None
    _global_active: set[str] = field(default_factory=set)
    _param_active: set[tuple[int, int]] = field(default_factory=set)
    _defined: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.params = _SameFileCallers(self)
        self._defined = {f.name for f in self.fir.functions if f.kind != "lambda"}

    def release(self) -> None:
        """Let go of the function analyses and the callers' helper, which point back at
        this object (`FileIR.dispose`): with those cycles broken the file's IR is freed as
        soon as it is dropped. The analysis is unusable after, as the IR is."""
        self._functions.clear()
        self.params = _NoCallers()

    def routine(self, name: str) -> Routine | None:
        """Knowledge about a called routine, unless the file defines a function of that name."""
        if name in self._defined:
            return None
        return self.knowledge.get(name)

    def function(self, fn: Function) -> FunctionValues:
        fv = self._functions.get(id(fn))
        if fv is None:
            fv = self._functions[id(fn)] = FunctionValues(fn, self)
        return fv

    def at_call(self, site: CallSite) -> CallValues | None:
        """The value questions for a call site, or None when it is outside a function or
        cannot be located in its function's flow graph (unreachable code)."""
        if site.function is None:
            return None
        fv = self.function(site.function)
        found = fv.locate(site)
        if found is None:
            return None
        call, el = found
        return CallValues(self, fv, call, el)

    def global_values(self, name: str, origin: Origin, depth: int) -> Values:
        """A `const` global of the file; anything else is unknown."""
        if self._globals is None:
            self._globals = {d.name: d for d in self.fir.globals if d.const and d.init}
        decl = self._globals.get(name)
        if decl is None or decl.init is None or name in self._global_active or depth > MAX_DEPTH:
            return frozenset({unknown(origin)})
        self._global_active.add(name)
        try:
            init = decl.init
            mine = Origin("global", init.start, init.end, init.via, name, init)
            return _FileScope(self).eval(init, {}, mine, depth + 1)
        finally:
            self._global_active.discard(name)

    def constant_values(self, e: Expr) -> Values:
        """The values of `e` from constants alone (no variables)."""
        return _FileScope(self).eval(e, {}, Origin("arg", e.start, e.end, e.via, "", e))

    def handle_opens(self, fv: FunctionValues, arg: Expr, state: State,
                     depth: int) -> list[HandleOpen]:
        """Opens whose handle `arg` holds in `state` of `fv` (followed through assignments
        and through helpers of the file that return it in an out-parameter)."""
        if depth > MAX_PARAM_DEPTH or state is None:
            return []
        e = arg.strip()
        while e.kind == "comma" and e.children:
            e = e.children[-1].strip()
        key = lvalue_key(e) if e.kind in ("name", "field", "unary") else None
        if key is None or not fv.tracked(key) or _base(key) in fv.escaped:
            return []
        out: list[HandleOpen] = []
        for d in fv.defs_of(key, state):
            out.extend(self._opens_of_def(fv, d, depth))
        return out

    def _opens_of_def(self, fv: FunctionValues, d: Def, depth: int) -> list[HandleOpen]:
        if d.kind in ("assign", "decl") and d.rhs is not None and d.op == "=":
            return self.handle_opens(fv, d.rhs, fv.state_before(d.element), depth + 1)
        if d.kind != "out" or d.call is None:
            return []
        name = d.call.callee or ""
        routine = self.routine(name)
        if routine is not None:
            if routine.handle_out_param != d.arg_index or routine.access_param is None:
                return []
            if any(p == "SourceHandle" for p, _ in routine.params):
                return []  # a duplicate may copy the source handle's access
            args = d.call.args
            if routine.access_param >= len(args) or d.element is None:
                return []
            access = fv.value_at(d.element, args[routine.access_param])
            return [HandleOpen(routine, d.call, fv.fn, access)]
        helpers = self.fir.function_named(name)
        if len(helpers) != 1 or helpers[0].kind == "lambda":
            return []
        helper = helpers[0]
        if d.arg_index >= len(helper.params) or not helper.params[d.arg_index].name:
            return []
        hv = self.function(helper)
        exit_state = hv.entry_states.get(helper.cfg.exit.id)
        pname = "*" + helper.params[d.arg_index].name
        if exit_state is None:
            return []
        out: list[HandleOpen] = []
        for hd in hv.defs_of(pname, exit_state):
            if hd.kind == "assign" and hd.rhs is not None and hd.op == "=":
                out.extend(self.handle_opens(hv, hd.rhs, hv.state_before(hd.element),
                                             depth + 1))
            elif hd.kind == "out":
                out.extend(self._opens_of_def(hv, hd, depth + 1))
        return out


class _NoCallers:
    """The parameter source of a released analysis: it knows nothing."""

    def param_values(self, fn: Function, index: int, depth: int) -> Values | None:
        return None


class _SameFileCallers:
    """Parameter values from the calls of the function in the same file."""

    def __init__(self, owner: FileValues) -> None:
        self.owner = owner

    def param_values(self, fn: Function, index: int, depth: int) -> Values | None:
        owner = self.owner
        if fn.kind == "lambda" or depth > MAX_PARAM_DEPTH:
            return None
        if len([f for f in owner.fir.functions if f.name == fn.name]) != 1:
            return None
        key = (id(fn), index)
        if key in owner._param_active:
            return None
        sites = [c for c in owner.fir.calls if c.callee == fn.name and c.function is not None
                 and not c.via]
        if not sites:
            return None
        owner._param_active.add(key)
        try:
            out: set[Bits] = set()
            for site in sites:
                cv = owner.at_call(site)
                if cv is None or index >= len(cv.call.args) or len(cv.call.args) != len(
                        fn.params):
                    return None
                caller = site.function.name if site.function is not None else ""
                for b in cv.values(cv.call.args[index]):
                    o = b.origin
                    if o.kind == "arg":
                        o = Origin("param", o.start, o.end, o.via, caller, o.expr)
                    out.add(Bits(b.ones, b.zeros, o))
            return _cap(out) if out else None
        finally:
            owner._param_active.discard(key)


def file_values(fir: FileIR, knowledge: Knowledge) -> FileValues:
    """The (cached) value analysis of a file."""
    fv: FileValues | None = fir.memo.get("values")
    if fv is None or fv.knowledge is not knowledge:
        fv = FileValues(fir, knowledge)
        fir.memo["values"] = fv
    return fv


# -- messages -----------------------------------------------------------------------------
def source_text(fir: FileIR, origin: Origin, limit: int = 60) -> str:
    """What the developer wrote for a value: the macro's name, or the expression's text."""
    if origin.via:
        return origin.via
    text = " ".join(fir.text(origin.start, origin.end).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_value(b: Bits, fir: FileIR, constants: Constants,
                   prefix: str | tuple[str, ...] = "") -> str:
    """A value for a message: flag names when fully known, else the source text."""
    v = b.value
    if v is not None:
        if v == 0:
            return "0"
        names = constants.names_of(v, prefix) if prefix else []
        return " | ".join(names) if names else hex(v)
    return f"`{source_text(fir, b.origin)}`"


def describe_origin(o: Origin, fir: FileIR, with_text: bool = True) -> str:
    """Where a value was set, for a message ("set at line 12 to `0`")."""
    line = fir.position(o.start)[0]
    text = f" to `{source_text(fir, o)}`" if with_text else ""
    macro = f", from macro {o.via}" if o.via else ""
    if o.kind == "arg":
        return f"written in the call{macro}"
    if o.kind == "init":
        return f"set by {o.detail or 'its initializer'} at line {line}{text}"
    if o.kind in ("assign", "decl"):
        return f"set at line {line}{text}"
    if o.kind == "global":
        return f"from the constant {o.detail} (line {line})"
    if o.kind == "param":
        passed = f" as `{source_text(fir, o)}`" if with_text else ""
        return f"passed by {o.detail or 'a caller'} at line {line}{passed}"
    return f"line {line}"

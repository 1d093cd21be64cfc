"""The knowledge table: documented facts about kernel routines, read by every rule.

Two files make it: `routines.json`, generated from the WDK documentation pages by
`ddilint knowledge import` (see `importer.py`), and `overlay.toml`, a small hand-kept file
for facts the pages do not state in a machine-usable way (which routines raise the IRQL and
where they save the old one, which release a handle), each entry with its reason. Rules
never hard-code routine facts: they ask `Knowledge`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from ddilint.analyzer.ir import FileIR  # for real, not for the checker: see ir.py
from ddilint.analyzer.pickling import compact_pickle

HERE = Path(__file__).resolve().parent
ROUTINES_JSON = HERE / "routines.json"
OVERLAY_TOML = HERE / "overlay.toml"

# IRQLs in order. DIRQL stands for any device IRQL (above DISPATCH_LEVEL).
IRQL_ORDER: dict[str, int] = {
    "PASSIVE_LEVEL": 0,
    "APC_LEVEL": 1,
    "DISPATCH_LEVEL": 2,
    "DIRQL": 3,
    "HIGH_LEVEL": 4,
}
IRQL_NAMES = {v: k for k, v in IRQL_ORDER.items()}


def irql_rank(name: str | None) -> int | None:
    """Order of an IRQL name (PASSIVE_LEVEL=0 ... HIGH_LEVEL=4); None when unknown."""
    if name is None:
        return None
    return IRQL_ORDER.get(name.strip())


@compact_pickle
@dataclass(frozen=True, slots=True)
class IrqlEffect:
    """How a routine changes the IRQL of its caller.

    kind: "raise" (to `level`, saving the old IRQL in `saved_param` or the return value
    when `saved_param` is None), "restore" (back to the IRQL held in `restore_param`),
    "acquire"/"release" (a lock keyed by `key_param` that raises to `level` and restores on
    release), "lower" (to the level given in `restore_param`).
    """

    kind: str
    level: str | None = None
    saved_param: int | None = None
    restore_param: int | None = None
    key_param: int | None = None
    conditional: bool = False


@compact_pickle
@dataclass(frozen=True, slots=True)
class IrqlCondition:
    """A lower documented maximum IRQL that holds when an argument has a certain value.

    The condition holds when argument `param` (0-based) names one of `names` (a flag OR-ed
    in, or an enumeration value: `POOL_FLAG_PAGED`, `PagedPool`), or, with `null`, is a
    NULL pointer. Then the caller must be at `max_irql` or below ("A caller executing at
    DISPATCH_LEVEL must specify POOL_FLAG_NON_PAGED", ExAllocatePool2, Remarks).
    """

    param: int
    max_irql: str
    names: tuple[str, ...] = ()
    null: bool = False


@compact_pickle
@dataclass(frozen=True, slots=True)
class Routine:
    """Everything ddilint knows about one routine, and where each fact comes from."""

    name: str
    header: str = ""
    page: str = ""
    url: str = ""
    max_irql: str | None = None
    min_irql: str | None = None
    irql_text: str | None = None  # req.irql as the page writes it
    params: tuple[tuple[str, str], ...] = ()
    handle_out_param: int | None = None
    attributes_param: int | None = None
    object_attributes_param: int | None = None
    access_param: int | None = None
    process_handle_param: int | None = None
    release: tuple[str, ...] = ()
    returns_status: bool | None = None
    compliance: tuple[str, ...] = ()
    twin: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    # Facts from the overlay only.
    irql: IrqlEffect | None = None
    irql_conditions: tuple[IrqlCondition, ...] = ()
    closes_handle_param: int | None = None
    user_mode_only: bool = False
    # An entry made from the analyzed project's own annotations (`page` is then
    # "file:line" of the annotation), not from the documentation.
    project: bool = False
    # Access rights of which the process handle parameter must grant at least one.
    process_access: tuple[str, ...] = ()
    # Access rights in DesiredAccess that need a privilege the caller may not hold.
    privileged_access: tuple[str, ...] = ()
    # Handle life (DDI201-203), overlay only: the release happens only when this flag name
    # is among the arguments (ZwDuplicateObject's DUPLICATE_CLOSE_SOURCE); the new handle
    # lands in the handle table of the process passed in this parameter (ours only when it
    # is the current process); the routine never keeps or releases a handle passed to it
    # (assertions, debug output, InitializeObjectAttributes).
    closes_handle_flag: str = ""
    handle_out_process_param: int | None = None
    keeps_no_handle: bool = False

    def source(self, fact: str) -> str:
        """Page and section a fact comes from ("ntifs/nf-...md#Parameters: X"), or ""."""
        return self.sources.get(fact, "")

    def param_name(self, index: int | None) -> str:
        """The documented name of a parameter position, or "argument N"."""
        if index is None:
            return ""
        if 0 <= index < len(self.params):
            return self.params[index][0]
        return f"argument {index + 1}"


@compact_pickle
@dataclass(frozen=True, slots=True)
class RoleInfo:
    """What a function role means (RULES.md execution-context table): the IRQL range on
    entry (None when no single answer is documented) and whether it runs in the system
    process."""

    name: str
    label: str
    irql_min: int | None = None
    irql_max: int | None = None
    system: bool = False


@compact_pickle
@dataclass(frozen=True, slots=True)
class Registration:
    """A routine argument that registers a callback with a role."""

    arg: int
    role: str
    system_if_null: int | None = None  # this argument must be NULL for the system role
    otherwise: str = ""  # the role when that argument is not NULL


@compact_pickle
@dataclass(frozen=True, slots=True)
class Knowledge:
    """The routine table plus the role typedefs and lists rules share."""

    routines: Mapping[str, Routine]
    role_typedefs: Mapping[str, str]
    generator: Mapping[str, Any] = field(default_factory=dict)
    roles: Mapping[str, RoleInfo] = field(default_factory=dict)
    registrations: Mapping[str, tuple[Registration, ...]] = field(default_factory=dict)
    registration_fields: Mapping[str, str] = field(default_factory=dict)
    # What the table was built from (the shipped files, by size and time for the generated
    # table, and the extra entries), for the cache's keys; "" when unknown (the keys then
    # take the routines themselves).
    fingerprint: str = ""

    def get(self, name: str | None) -> Routine | None:
        """Facts about `name`, or None when the routine is not documented here."""
        if name is None:
            return None
        return self.routines.get(name)

    def zw_twin(self, name: str) -> str | None:
        """For an `Nt` routine with a `Zw` form, that `Zw` name."""
        r = self.routines.get(name)
        if name.startswith("Nt"):
            twin = r.twin if r is not None and r.twin else None
            candidate = twin or ("Zw" + name[2:])
            if candidate.startswith("Zw") and candidate in self.routines:
                return candidate
        return None

    def nt_twin(self, name: str) -> str | None:
        """For a `Zw` routine with an `Nt` form, that `Nt` name."""
        if not name.startswith("Zw"):
            return None
        r = self.routines.get(name)
        if r is not None and r.twin and r.twin.startswith("Nt"):
            return r.twin
        candidate = "Nt" + name[2:]
        return candidate if candidate in self.routines else None

    def load(self) -> None:
        """Read what the table has not read yet (before forking workers, so that they
        share it instead of each reading it)."""
        load = getattr(self.routines, "load", None)
        if load is not None:
            load()

    def handle_releasers(self) -> frozenset[str]:
        """Routines that close the handle given to them."""
        return frozenset(n for n, r in self.routines.items() if r.closes_handle_param is not None)


def call_routines(fir: FileIR, knowledge: Knowledge) -> list[Routine | None]:
    """The documented routine each call of `fir` names, in the order of `fir.calls`; None
    for a call of anything else, and for a name written with a class or namespace
    (`Undocumented::NtClose(h)` is that scope's own function; `::ZwClose` is the WDK's).
    Looked up once per file: the summary, the handle analysis and the rules each go
    through every call of the file for the few that name a routine."""
    memo = fir.memo.get("call_routines")
    if memo is not None and memo[0] is knowledge:
        return memo[1]  # type: ignore[no-any-return]
    get = knowledge.routines.get
    found = [None if c.scope else get(c.callee) for c in fir.calls]
    fir.memo["call_routines"] = (knowledge, found)
    return found


_ROUTINE_FIELDS = {f.name for f in fields(Routine)}
# Fields the generated table holds as they are (the others are converted, or set only by
# the overlay); one comprehension takes them, since every run builds four thousand routines
# before it starts.
_AS_STORED = frozenset(_ROUTINE_FIELDS - {"name", "irql", "params", "release", "compliance",
                                          "sources"})


def _routine_from(name: str, raw: Mapping[str, Any]) -> Routine:
    kwargs: dict[str, Any] = {k: v for k, v in raw.items() if k in _AS_STORED}
    params = raw.get("params")
    if params:  # a page that names no direction stores null: ""
        kwargs["params"] = tuple((p["name"], p.get("direction") or "") for p in params)
    for key in ("release", "compliance"):
        value = raw.get(key)
        if value:
            kwargs[key] = tuple(value)
    sources = raw.get("sources")
    if sources:
        kwargs["sources"] = dict(sources)
    return Routine(name=name, **kwargs)


def _apply_overlay(base: Routine | None, name: str, raw: Mapping[str, Any]) -> Routine:
    r = base or Routine(name=name)
    changes: dict[str, Any] = {}
    sources = dict(r.sources)
    # `source`: the page section a hand-kept fact was read from ("Remarks"); the facts of
    # the entry are then cited as "<page>#Remarks (overlay.toml)".
    section = raw.get("source")
    where = f"{r.page}#{section} (overlay.toml)" if section and r.page else "overlay.toml"
    for key, value in raw.items():
        if key in ("reason", "source"):
            continue
        if key == "irql":
            changes["irql"] = IrqlEffect(**value)
            sources["irql"] = where
        elif key == "irql_conditions":
            changes[key] = tuple(
                IrqlCondition(c["param"], c["max_irql"], tuple(c.get("names", ())),
                              bool(c.get("null", False)))
                for c in value
            )
            sources[key] = where
        elif key == "params":
            changes[key] = tuple((p["name"], p.get("direction") or "") for p in value)
            sources[key] = where
        elif key in ("max_irql", "min_irql") and value == "":
            changes[key] = None  # no bound that a call can be checked against
            sources[key] = where
        elif key in ("release", "compliance", "process_access", "privileged_access"):
            changes[key] = tuple(value)
            sources[key] = where
        elif key in _ROUTINE_FIELDS and key != "name":
            changes[key] = value
            sources[key] = where
        else:
            raise ValueError(f"overlay entry {name}: unknown key {key!r}")
    changes["sources"] = sources
    return replace(r, **changes)


def _patched(base: Routine | None, name: str,
             patches: tuple[Mapping[str, Any], ...]) -> Routine:
    """`base` with the overlay's and the extra entries for `name` applied in order."""
    r = _apply_overlay(base, name, patches[0])
    for patch in patches[1:]:
        r = _apply_overlay(r, name, patch)
    return r


class RoutineTable(Mapping[str, Routine]):
    """Name -> `Routine`, built lazily at two levels.

    - The generated table (`raw`, or a function that reads it) is read when a routine is
      first looked up. A run whose results all come from the cache looks up none: reading
      the JSON was an eighth of such a run.
    - An entry becomes a `Routine` when it is first asked for. A run looks up a few hundred
      of the four thousand names, and building them all was a third of every run's
      start-up.

    `patches` are the overlay's and the extra entries, in order, applied to a routine when
    it is built (they were checked when the table was made). The order is the generated
    table's, then the names only the patches have."""

    __slots__ = ("_built", "_patches", "_raw", "_read")

    def __init__(self, raw: Mapping[str, Mapping[str, Any]] | Callable[
                     [], Mapping[str, Mapping[str, Any]]],
                 built: dict[str, Routine] | None = None,
                 patches: Mapping[str, tuple[Mapping[str, Any], ...]] | None = None) -> None:
        self._raw: Mapping[str, Mapping[str, Any]] | None = None
        self._read: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None
        self._built = built if built is not None else {}
        self._patches = patches or {}
        if callable(raw):
            self._read = raw
        else:
            self._set_raw(raw)

    def _set_raw(self, raw: Mapping[str, Mapping[str, Any]]) -> None:
        self._raw = raw
        # The routines only the patches have are built now: a name the generated table
        # lacks is then a miss with no more lookups (most names a run asks about are not
        # routines at all).
        for name, patches in self._patches.items():
            if name not in raw and name not in self._built:
                self._built[name] = _patched(None, name, patches)

    def load(self) -> Mapping[str, Mapping[str, Any]]:
        """The generated table, read now if it was not yet."""
        if self._raw is None:
            assert self._read is not None
            read, self._read = self._read, None
            self._set_raw(read())
        assert self._raw is not None
        return self._raw

    def get(self, name: str, default: Any = None) -> Any:  # the hot path: no exception
        r = self._built.get(name)
        if r is None:
            table = self._raw
            if table is None:
                table = self.load()
                r = self._built.get(name)  # a name only the patches have: built by `load`
                if r is not None:
                    return r
            raw = table.get(name)
            if raw is None:
                return default
            patches = self._patches.get(name)
            r = self._built[name] = _routine_from(name, raw) if patches is None else (
                _patched(_routine_from(name, raw), name, patches))
        return r

    def __getitem__(self, name: str) -> Routine:
        r: Routine | None = self.get(name)
        if r is None:
            raise KeyError(name)
        return r

    def __contains__(self, name: object) -> bool:
        return name in self._built or name in self._patches or name in self.load()

    def __iter__(self) -> Iterator[str]:
        raw = self.load()
        yield from raw
        yield from (n for n in self._patches if n not in raw)

    def __len__(self) -> int:
        raw = self.load()
        return len(raw) + sum(1 for n in self._patches if n not in raw)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return RoutineTable, (self.load(), self._built, self._patches)


def build_knowledge(
    routines_data: Mapping[str, Any],
    overlay_data: Mapping[str, Any],
    extra: Mapping[str, Mapping[str, Any]] | None = None,
    sources: str = "",
) -> Knowledge:
    """Combine the generated table, the overlay and extra entries (config, plugins).
    `sources`: a digest of the data the first two were read from, if known (it and the
    extra entries make the knowledge's `fingerprint`)."""
    patches: dict[str, tuple[Mapping[str, Any], ...]] = {}
    for entries in (overlay_data.get("routines", {}), extra or {}):
        for name, raw in entries.items():
            _apply_overlay(None, name, raw)  # a bad key or value is an error now
            patches[name] = (*patches.get(name, ()), raw)
    table = RoutineTable(lambda: routines_data.get("routines", {}), None, patches)
    fingerprint = ""
    if sources:
        h = hashlib.blake2b(sources.encode(), digest_size=16)
        h.update(json.dumps(extra or {}, sort_keys=True, default=repr).encode())
        fingerprint = h.hexdigest()
    typedefs = dict(overlay_data.get("role_typedefs", {}))
    roles: dict[str, RoleInfo] = {}
    for name, raw in overlay_data.get("roles", {}).items():
        irql = raw.get("irql")
        lo = irql_rank(irql[0]) if irql else None
        hi = irql_rank(irql[1]) if irql else None
        roles[name] = RoleInfo(name, raw.get("label", name), lo, hi, bool(raw.get("system")))
    registrations = {
        routine: tuple(Registration(int(r["arg"]), r["role"], r.get("system_if_null"),
                                    r.get("otherwise", "")) for r in rows)
        for routine, rows in overlay_data.get("registrations", {}).items()
    }
    return Knowledge(table, typedefs, _Later(lambda: routines_data.get("generator", {})), roles,
                     registrations, dict(overlay_data.get("registration_fields", {})),
                     fingerprint)


class _Later(Mapping[str, Any]):
    """The mapping `make()` returns, made when it is first read (and made once)."""

    __slots__ = ("_made", "_make")

    def __init__(self, make: Callable[[], Mapping[str, Any]]) -> None:
        self._make: Callable[[], Mapping[str, Any]] | None = make
        self._made: Mapping[str, Any] | None = None

    def _value(self) -> Mapping[str, Any]:
        if self._made is None:
            assert self._make is not None
            self._made, self._make = self._make(), None
        return self._made

    def __getitem__(self, key: str) -> Any:
        return self._value()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._value())

    def __len__(self) -> int:
        return len(self._value())

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return dict, (dict(self._value()),)


@lru_cache(maxsize=1)
def _load_files() -> tuple[Mapping[str, Any], dict[str, Any], str]:
    """The generated table (read and parsed at the first lookup), the overlay, and a
    digest that changes with either file: the generated table's size and modification
    time, as the cache's key has for every file of the package (reading its 3.7 MB only
    to hash them was most of what a run served from the cache spent on knowledge), and
    the overlay's bytes."""
    h = hashlib.blake2b(digest_size=16)
    routines: Mapping[str, Any] = {"routines": {}}
    try:
        st: os.stat_result | None = ROUTINES_JSON.stat()
    except OSError:  # not generated yet (`ddilint knowledge import`): an empty table
        st = None
    if st is not None:
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        routines = _Later(lambda: json.loads(ROUTINES_JSON.read_bytes()))
    h.update(b"\0")
    data = OVERLAY_TOML.read_bytes()
    h.update(data)
    overlay = tomllib.loads(data.decode("utf-8"))
    return routines, overlay, h.hexdigest()


def load_knowledge(extra: Mapping[str, Mapping[str, Any]] | None = None) -> Knowledge:
    """The shipped table (generated + overlay), with optional extra routine entries."""
    if not extra:
        return _default_knowledge()
    routines, overlay, digest = _load_files()
    return build_knowledge(routines, overlay, extra, digest)


@lru_cache(maxsize=1)
def _default_knowledge() -> Knowledge:
    routines, overlay, digest = _load_files()
    return build_knowledge(routines, overlay, sources=digest)

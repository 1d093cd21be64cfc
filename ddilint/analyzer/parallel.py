"""Worker processes for the per-file phases of a run (`ddilint check -j N`).

Each worker owns a share of the files (balanced by size) for the whole run, so a file it
parsed in phase one is still parsed when its rules run in phase three:

1. the main process sends each worker its files; the worker summarizes them, keeps their
   IR (within its share of the memory budget) and sends back each summary, pickled;
2. the main process relays every file's pickled summary (fresh or from the cache) to
   every worker that does not hold it already, without unpickling them itself; each
   worker builds the project model;
3. each worker runs the rules on its files and sends back the findings.

Results are gathered by path, so the output does not depend on the number of workers or
on which one finished first. A worker that dies takes only its unfinished files with it:
they get a DDI906 notice.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import sys
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from ddilint.analyzer import engine
from ddilint.analyzer.engine import (
    Options,
    Phase1,
    Phase3,
    cacheable,
    check_parsed,
    notice,
    summarize_bytes,
)
from ddilint.analyzer.ir import FileIR
from ddilint.analyzer.project import Project
from ddilint.cache import ResultCache
from ddilint.findings import Finding
from ddilint.knowledge import Knowledge
from ddilint.rules.base import Rule


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    # fork shares the loaded rules and knowledge with the workers for free.
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _worker(conn: Connection, rules: Sequence[Rule], knowledge: Knowledge, options: Options,
            keep_bytes: int) -> None:
    kept: dict[str, FileIR] = {}
    raws: dict[str, bytes] = {}
    first: dict[str, Phase1] = {}
    project: Project | None = None
    budget = keep_bytes
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        kind = msg[0]
        if kind == "summarize":
            for name, raw, mine in msg[1]:
                summary, fir, notes = summarize_bytes(name, raw, knowledge, options)
                if mine:
                    raws[name] = raw
                    if fir is not None and len(raw) <= budget:
                        kept[name] = fir
                        budget -= len(raw)
                # Kept as is: the main process relays only the other workers' summaries.
                first[name] = Phase1(summary, notes)
                conn.send(("summary", name, notes,
                           pickle.dumps(first[name], pickle.HIGHEST_PROTOCOL)))
            conn.send(("summarized",))
        elif kind == "project":
            names, others, blobs = msg[1], msg[2], msg[3]
            del msg  # the pickled summaries of the tree: not needed once opened
            first.update((n, pickle.loads(b)) for n, b in zip(others, blobs, strict=True))
            del blobs
            project = Project([s for n in names if (s := first[n].summary) is not None],
                              knowledge, options.roles)
        elif kind == "check":
            assert project is not None
            for name, raw in msg[1]:
                raw = raws.pop(name, raw)
                result = check_parsed(name, raw, kept.pop(name, None), first[name], rules,
                                      knowledge, options, project)
                conn.send(("result", name, result))
            conn.send(("checked",))
        else:
            return


def _balance(names: Sequence[str], sizes: Mapping[str, int], workers: int) -> list[list[str]]:
    """Split `names` into `workers` lists of about equal total size (largest first)."""
    shares: list[list[str]] = [[] for _ in range(workers)]
    load = [0] * workers
    for name in sorted(names, key=lambda n: (-sizes[n], n)):
        w = load.index(min(load))
        shares[w].append(name)
        load[w] += sizes[name] + 1
    return shares


def run_parallel(
    raws: Mapping[str, bytes], todo: Sequence[str], rules: Sequence[Rule], knowledge: Knowledge,
    options: Options, workers: int, cache: ResultCache | None, digests: Mapping[str, str],
    progress: Callable[[int, int], None] | None, done: int, total: int,
) -> dict[str, Phase3]:
    """Phases one to three of `raws` in `workers` processes; results of the `todo` files."""
    names = list(raws)
    sizes = {n: len(raws[n]) for n in names}
    blobs: dict[str, bytes] = {}
    skeys: dict[str, str] = {}
    if cache is not None and cache.enabled:
        skeys = {n: cache.summary_key(n, digests[n]) for n in names}
        cached = cache.get_many_raw(list(skeys.values()))
        blobs = {n: cached[k] for n, k in skeys.items() if k in cached}
    wanted = set(todo)
    misses = [n for n in names if n not in blobs]
    # Every file to check goes to the worker that summarizes it; cached ones are spread too.
    shares = _balance(misses + [n for n in todo if n in blobs], sizes, workers)
    ctx = _context()
    conns: list[Connection] = []
    procs = []
    for _ in range(workers):
        parent, child = ctx.Pipe()
        share = engine.KEEP_PARSED_BYTES // workers
        proc = ctx.Process(target=_worker, daemon=True,
                           args=(child, rules, knowledge, options, share))
        proc.start()
        child.close()
        conns.append(parent)
        procs.append(proc)
    out: dict[str, Phase3] = {}
    owner = {n: w for w, share in enumerate(shares) for n in share}
    alive = set(range(workers))
    try:
        fresh: dict[str, bytes] = {}
        fresh_notes: dict[str, list[Finding]] = {}

        by: dict[str, int] = {}  # file -> the worker that summarized it (and keeps that)

        def summarized(w: int, m: tuple[Any, ...]) -> None:
            fresh[m[1]] = m[3]
            fresh_notes[m[1]] = m[2]
            by[m[1]] = w

        for w, conn in enumerate(conns):
            conn.send(("summarize", [(n, raws[n], n in wanted) for n in shares[w]
                                     if n not in blobs]))
        _gather(conns, alive, "summarized", summarized)
        if cache is not None and skeys:
            cache.put_many_raw((skeys[n], b) for n, b in fresh.items()
                               if cacheable(fresh_notes[n]))
        blobs.update(fresh)
        order = [n for n in names if n in blobs]
        for w in sorted(alive):
            others = [n for n in order if by.get(n, -1) != w]
            conns[w].send(("project", order, others, [blobs[n] for n in others]))
            conns[w].send(("check", [(n, raws[n] if n in blobs and n not in fresh else b"")
                                     for n in shares[w] if n in wanted]))
        blobs.clear()
        fresh.clear()

        def got(w: int, m: tuple[Any, ...]) -> None:
            nonlocal done
            out[m[1]] = m[2]
            done += 1
            if progress is not None:
                progress(done, total)

        _gather(conns, alive, "checked", got)
    finally:
        for w in alive:
            with contextlib.suppress(OSError):
                conns[w].send(("stop",))
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        for conn in conns:
            conn.close()
    for name in todo:
        if name not in out:
            out[name] = Phase3([notice(
                "DDI906", name, f"internal error: worker process {owner.get(name, -1)} "
                "stopped before this file was analyzed (see the other notices of its files)")],
                False, 0)
    return out


def _gather(conns: Sequence[Connection], alive: set[int], last: str,
            on_message: Callable[[int, tuple[Any, ...]], None]) -> None:
    """Receive from the live workers until each has sent `last` (or died)."""
    waiting = set(alive)
    index = {id(c): w for w, c in enumerate(conns)}
    while waiting:
        for ready in wait([conns[w] for w in waiting]):
            w = index[id(ready)]
            try:
                msg = conns[w].recv()
            except (EOFError, OSError):
                print(f"ddilint: warning: worker process {w} died", file=sys.stderr)
                waiting.discard(w)
                alive.discard(w)
                continue
            if msg[0] == last:
                waiting.discard(w)
            else:
                on_message(w, msg)

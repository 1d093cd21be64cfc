"""Worker processes for phase one of a run (`ddilint check -j N`).

Phase one is the whole per-file cost (parse, IR, summary, every rule's `check_file`) and
needs nothing but the file, so the processes share it and nothing else. `-j N` is this
process and N - 1 forked workers, all taking batches of files from one queue, largest
first (a big file never waits behind a queue of others). The main process hands a worker
its next batch when the worker reports one done, and the worker sends back every file's
`FileFacts`, pickled (the main process pickles its own only for the cache). Batches go
out through one sender thread per worker, so that the main process never blocks writing
to a worker that is itself blocked writing its results: it reads whatever the workers sent
between two of its own files, and waits for them only when the queue is empty. It then
builds the project model once and resolves the pending parts itself (phases two and three
are a small share of a run).

Results are gathered by path, so the output does not depend on the number of processes
or on which one took a file. Each process reads its files itself: the workers are forked
before the main process reads any source, and inherit none. A worker that dies takes only
the file it was on with it (a DDI906 notice); the files it had not started go back to the
queue. (A crash of native code in the main process ends the run, as it does with `-j 1`.)
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue as queues
import sys
import threading
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from ddilint.analyzer.engine import (
    FileFacts,
    Options,
    collect_garbage,
    notice,
    read_and_facts,
)
from ddilint.analyzer.frontend import language_for, prepare_queries
from ddilint.knowledge import Knowledge
from ddilint.rules.base import Rule

# A batch: at most this many files and (beyond its first file) this much source.
BATCH_FILES = 8
BATCH_BYTES = 256 * 1024
# Batches a worker holds at once: one it works on, one waiting, so it never idles while
# the main process answers.
IN_FLIGHT = 2


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    # fork shares the loaded rules and knowledge with the workers for free.
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _worker(conn: Connection, rules: Sequence[Rule], knowledge: Knowledge,
            options: Options, digest: bool) -> None:
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] != "files":
            return
        for name, check in msg[1]:
            facts, read = read_and_facts(name, rules, knowledge, options, check, digest)
            conn.send(("facts", name, read, pickle.dumps(facts, pickle.HIGHEST_PROTOCOL)))
        conn.send(("batch",))
        collect_garbage()  # and freeze what lives on (see engine.COLLECT_EVERY)


def batches(names: Sequence[str], sizes: Mapping[str, int]) -> list[list[str]]:
    """`names` largest first, cut into batches of a few files (see BATCH_FILES/BYTES)."""
    out: list[list[str]] = []
    cur: list[str] = []
    size = 0
    for name in sorted(names, key=lambda n: (-sizes[n], n)):
        if cur and (len(cur) >= BATCH_FILES or size + sizes[name] > BATCH_BYTES):
            out.append(cur)
            cur, size = [], 0
        cur.append(name)
        size += sizes[name]
    if cur:
        out.append(cur)
    return out


def facts_in_parallel(
    todo: Sequence[str], sizes: Mapping[str, int], checked: Collection[str],
    rules: Sequence[Rule], knowledge: Knowledge, options: Options, workers: int,
    blobs: dict[str, bytes] | None, digests: dict[str, str],
    tick: Callable[[str], None] | None,
) -> dict[str, FileFacts]:
    """`FileFacts` of the `todo` files, read and computed in `workers` processes: this one
    and `workers - 1` forked ones. With `blobs` (a run with a cache), each file's pickled
    facts are left there, as the cache stores them, and the hash of the bytes each process
    read goes to `digests`.

    This process takes batches from the same queue as the forked workers and, between two
    of its files, reads every message they sent: it sends nothing but batches (through the
    sender threads) and waits only when the queue is empty. Its own facts are pickled only
    for a cache, and the machine's cores run only the work (a main process that only
    unpickled took CPU time from the workers)."""
    queue = deque(batches(todo, sizes))
    knowledge.load()  # once, here: the forked workers share what this process read
    prepare_queries(map(language_for, todo))  # likewise tree-sitter's compiled queries
    ctx = _context()
    conns: list[Connection] = []
    procs = []
    for _ in range(min(workers - 1, len(queue) - 1)):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, daemon=True,
                           args=(child, rules, knowledge, options, blobs is not None))
        proc.start()
        child.close()
        conns.append(parent)
        procs.append(proc)
    out: dict[str, FileFacts] = {}
    inflight: list[deque[list[str]]] = [deque() for _ in conns]
    outboxes: list[queues.SimpleQueue[Any]] = [queues.SimpleQueue() for _ in conns]

    def sender(w: int) -> None:
        while (msg := outboxes[w].get()) is not None:
            try:
                conns[w].send(msg)
            except (OSError, ValueError):  # the worker is gone: its reader finds out
                return

    senders = [threading.Thread(target=sender, args=(w,), daemon=True)
               for w in range(len(conns))]
    for t in senders:
        t.start()

    def give(w: int) -> None:
        while queue and len(inflight[w]) < IN_FLIGHT:
            batch = queue.popleft()
            inflight[w].append(batch)
            outboxes[w].put(("files", [(n, n in checked) for n in batch]))

    alive = set(range(len(conns)))
    index = {id(c): w for w, c in enumerate(conns)}

    def receive(timeout: float | None) -> None:
        """Handle every message the workers have sent; with `timeout` None, wait for at
        least one first."""
        ready = wait([conns[w] for w in alive], timeout)
        while ready:
            for conn in ready:
                w = index[id(conn)]
                try:
                    msg = conns[w].recv()
                except (EOFError, OSError):
                    print(f"ddilint: warning: worker process {w} died", file=sys.stderr)
                    alive.discard(w)
                    _lost(w, inflight[w], out, queue, tick)
                    inflight[w].clear()
                    continue
                if msg[0] == "facts":
                    name, digests[name], blob = msg[1], msg[2], msg[3]
                    out[name] = pickle.loads(blob)
                    if blobs is not None:
                        blobs[name] = blob
                    if tick is not None:
                        tick(name)
                elif msg[0] == "batch":
                    inflight[w].popleft()
                    give(w)
            ready = wait([conns[w] for w in alive], 0) if alive else []

    try:
        for w in alive:
            give(w)
        while True:
            if alive:
                receive(0)
            if queue:
                for name in queue.popleft():
                    out[name], digests[name] = read_and_facts(
                        name, rules, knowledge, options, name in checked, blobs is not None)
                    if blobs is not None:  # pickled for the cache now, while workers run
                        blobs[name] = pickle.dumps(out[name], pickle.HIGHEST_PROTOCOL)
                    if tick is not None:
                        tick(name)
                    if alive:
                        receive(0)
                collect_garbage()
            elif any(inflight[w] for w in alive):
                receive(None)
            else:
                break
    finally:
        for w in range(len(conns)):
            outboxes[w].put(("stop",) if w in alive else None)
            outboxes[w].put(None)
        for t in senders:
            t.join(timeout=5)
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        for conn in conns:
            conn.close()
    return out


def _lost(w: int, lost: Collection[list[str]], out: dict[str, FileFacts],
          queue: deque[list[str]], tick: Callable[[str], None] | None) -> None:
    """A worker died with the batches `lost` unfinished: the file it was on (the first
    without facts: it works through its batches in order) gets a DDI906 notice, in case it
    is what killed the worker; the files after it go back to the front of the queue."""
    left = [n for batch in lost for n in batch if n not in out]
    if not left:
        return
    name = left[0]
    out[name] = FileFacts(None, [notice(
        "DDI906", name, f"internal error: worker process {w} stopped while it analyzed "
        "this file")])
    if tick is not None:
        tick(name)
    if left[1:]:
        queue.appendleft(left[1:])

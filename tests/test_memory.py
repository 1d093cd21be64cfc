"""Phase one frees each file as soon as it is done: its IR and every analysis of it hold no
reference cycle after `FileIR.dispose`, so reference counting frees them and the worker's
garbage collector has nothing to find (on Windows-driver-samples, the collector used to
find some four hundred objects per file, and the IR had to be taken apart call by call)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from ddilint.analyzer.engine import Options, file_facts
from ddilint.knowledge import Knowledge
from ddilint.rules.base import Rule
from tests.conftest import ROOT, source_files


def test_no_file_leaves_a_reference_cycle(builtin_rules: list[Rule],
                                          knowledge: Knowledge) -> None:
    paths = source_files()
    assert len(paths) > 50
    # Caches filled on first use (compiled queries, lru caches) are not garbage: warm up.
    for p in paths:
        file_facts(p.as_posix(), p.read_bytes(), builtin_rules, knowledge, Options())
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        cyclic: dict[str, int] = {}
        for p in paths:
            facts = file_facts(p.as_posix(), p.read_bytes(), builtin_rules, knowledge,
                               Options())
            assert facts.analyzed
            del facts
            found = gc.collect()
            if found:
                cyclic[Path(p).relative_to(ROOT).as_posix()] = found
        assert cyclic == {}
    finally:
        if was_enabled:
            gc.enable()


def test_loading_cached_results_pauses_the_collector_and_freezes_what_it_loaded() -> None:
    # The collector is off while cached results are unpickled and back on after, even when
    # loading fails; in a run (`quiet_gc` froze what lived before it) what was loaded is
    # frozen too, so later collections never walk it.
    import pickle

    from ddilint.analyzer.engine import loading_without_gc, quiet_gc

    assert gc.isenabled()
    with pytest.raises(ValueError), loading_without_gc():
        assert not gc.isenabled()
        raise ValueError("a broken value")
    assert gc.isenabled()
    blob = pickle.dumps([[i] for i in range(1000)])
    with quiet_gc():
        frozen = gc.get_freeze_count()
        with loading_without_gc():
            loaded = pickle.loads(blob)
        assert gc.get_freeze_count() >= frozen + len(loaded)
    assert gc.isenabled() and gc.get_freeze_count() == 0

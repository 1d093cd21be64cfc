"""`bench/bench.py` runs end to end on a small corpus: every row is measured, and the
pre-commit rounds edit a copy, never the corpus."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

from tests.conftest import FIXTURES, ROOT


def _bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ddilint_bench", ROOT / "bench" / "bench.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_bench_measures_every_row_and_leaves_the_corpus_alone(tmp_path: Path) -> None:
    corpus = tmp_path / "driver"
    shutil.copytree(FIXTURES / "handle-leak", corpus)
    before = {p: p.read_bytes() for p in corpus.rglob("*") if p.is_file()}
    summary = _bench_module().run_bench(corpus, jobs=1, repeat=1, semgrep=False, extra=[],
                                        pre_commit=True)
    runs = summary["runs"]
    assert set(runs) == {"parse-only", "ddilint cold", "ddilint fill", "ddilint warm",
                         "pre-commit edit", "pre-commit same"}
    assert all(r["seconds"] > 0 and r["cpu"] > 0 for r in runs.values())
    assert summary["files"] == len([p for p in before if p.suffix in (".c", ".cpp")])
    assert {p: p.read_bytes() for p in corpus.rglob("*") if p.is_file()} == before
    assert not (corpus / ".git").exists()

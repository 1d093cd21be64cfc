"""`bench/bench.py` runs end to end on a small corpus: every row is measured, and the
pre-commit rounds edit a copy, never the corpus."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ddilint.analyzer.engine import discover, run
from ddilint.analyzer.project import STORY_HEAD, STORY_TAIL
from ddilint.knowledge import Knowledge
from ddilint.rules.base import Rule
from tests.conftest import FIXTURES, ROOT


def _bench_script(name: str) -> ModuleType:
    """The script `bench/{name}.py` as a module."""
    spec = importlib.util.spec_from_file_location(f"ddilint_{name}",
                                                  ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_bench_measures_every_row_and_leaves_the_corpus_alone(tmp_path: Path) -> None:
    corpus = tmp_path / "driver"
    shutil.copytree(FIXTURES / "handle-leak", corpus)
    before = {p: p.read_bytes() for p in corpus.rglob("*") if p.is_file()}
    summary = _bench_script("bench").run_bench(corpus, jobs=1, repeat=1, semgrep=False, extra=[],
                                        pre_commit=True)
    runs = summary["runs"]
    assert set(runs) == {"parse-only", "ddilint cold", "ddilint fill", "ddilint warm",
                         "pre-commit edit", "pre-commit same"}
    assert all(r["seconds"] > 0 and r["cpu"] > 0 for r in runs.values())
    assert summary["files"] == len([p for p in before if p.suffix in (".c", ".cpp")])
    assert {p: p.read_bytes() for p in corpus.rglob("*") if p.is_file()} == before
    assert not (corpus / ".git").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for Semgrep")
def test_semgrep_runs_on_the_corpus_and_on_an_empty_folder(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in `semgrep` that writes down what it was asked to scan, and how many files
    # that folder held.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "semgrep.log"
    fake = bin_dir / "semgrep"
    fake.write_text(f"#!{sys.executable}\n"
                    "import os, sys\n"
                    "target = sys.argv[-1]\n"
                    "rule = sys.argv[sys.argv.index('--config') + 1]\n"
                    "n = sum(len(f) for _d, _s, f in os.walk(target))\n"
                    f"open({str(log)!r}, 'a').write(f'{{rule}} {{n}}\\n')\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    corpus = tmp_path / "driver"
    shutil.copytree(FIXTURES / "handle-leak", corpus)
    rule = tmp_path / "rule.yaml"
    rule.write_text("rules: []\n")
    summary = _bench_script("bench").run_bench(corpus, jobs=1, repeat=2, semgrep=rule, extra=[])
    runs = summary["runs"]
    assert {"semgrep 1 rule", "semgrep start-up"} <= set(runs)
    files = sum(1 for p in corpus.rglob("*") if p.is_file())
    assert log.read_text().split("\n")[:-1] == [f"{rule} {files}", f"{rule} 0"] * 2


def test_semgrep_missing_stops_before_any_temporary_folder(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temp))
    with pytest.raises(SystemExit, match="no semgrep on PATH"):
        _bench_script("bench").run_bench(FIXTURES / "handle-leak", jobs=1, repeat=1, semgrep=True,
                                  extra=[])
    assert list(temp.iterdir()) == []


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
def test_instruction_counts_give_a_forked_process_only_its_own_work(tmp_path: Path) -> None:
    # Callgrind hands a forked child a copy of its counters: without the dump before the
    # fork, a worker that does nothing was counted with all its parent had run.
    mod = _bench_script("instructions")
    script = tmp_path / "fork.py"
    script.write_text("import os\nx = sum(range(400_000))\npid = os.fork()\n"
                      "if pid == 0:\n    os._exit(0)\nos.waitpid(pid, 0)\n")
    counts = mod.count(ROOT, [sys.executable, str(script)], children=True)
    parent, child = min(counts), max(counts)
    assert len(counts) == 2
    assert counts[child] * 100 < counts[parent]


def test_a_chained_synthetic_corpus_has_a_finding_in_every_link(
        tmp_path: Path, builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    gen = _bench_script("gen_corpus")
    files = 30
    gen.generate(tmp_path / "plain", files, 4)
    gen.generate(tmp_path / "chain", files, 4, chain=True)
    plain = sorted((tmp_path / "plain").rglob("*.c"))
    chained = sorted((tmp_path / "chain").rglob("*.c"))
    # The chain only adds: the rest of each file is the same for the same seed.
    assert all(c.read_text().startswith(p.read_text()) for p, c in zip(plain, chained, strict=True))
    links = [f for f in run(chained, builtin_rules, knowledge).findings
             if f.code == "DDI301" and "Relay" in f.message]
    assert len(links) == files
    # ChainDpc -> Relay0 -> ... -> Relay29: 30 calls, the middle ones counted.
    deepest = next(f for f in links if f.message.endswith(
        f" -> Relay{files - 1} (drv{files - 2:05d}.c:138)"))
    assert f" -> ... {files - STORY_HEAD - STORY_TAIL} more calls ... -> " in deepest.message
    assert deepest.message.startswith("ZwClose") and "ChainDpc is a DPC" in deepest.message


def test_stages_time_what_a_run_does_and_report_its_findings(
        builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    stages = _bench_script("stages")
    corpus = FIXTURES / "handle-leak"
    best, findings = stages.stages(corpus, jobs=1, rounds=2)
    assert list(best) == ["start-up", "discover", "phase one", "modes", "model",
                          "phase three", "report"]
    assert all(seconds >= 0 for seconds in best.values()) and best["phase one"] > 0
    # The same stages as a run: the same findings.
    assert findings == run(discover([corpus])[0], builtin_rules, knowledge).findings
    assert any(f.code == "DDI201" for f in findings)

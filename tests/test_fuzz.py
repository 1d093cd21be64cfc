"""Fuzzing in CI (bounded): mutated fixtures and random bytes never crash ddilint.

Each example runs every built-in rule plus a rule that builds every lazy part of the IR
(bodies, CFGs, dataflow, call arguments); the property is that no exception escapes, no
internal-error notice appears and the JSON report is valid. `tests/fuzz/run.py` runs the
same property for longer.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddilint.knowledge import load_knowledge
from ddilint.plugins import collect_rules, plugin_manager
from tests.exercise import ExerciseRule
from tests.fuzz.mutations import check_one, file_names, mutated, seed_files

SEEDS = [p.read_bytes() for p in seed_files()]
RULES = [*collect_rules(plugin_manager()), ExerciseRule()]
KNOWLEDGE = load_knowledge()
CI = settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_there_are_seeds() -> None:
    assert len(SEEDS) >= 5


@CI
@given(raw=mutated(SEEDS), path=file_names())
def test_mutated_fixtures_never_crash(raw: bytes, path: str) -> None:
    check_one(path, raw, RULES, KNOWLEDGE)


@settings(CI, max_examples=100)
@given(raw=st.binary(max_size=4096), path=file_names())
def test_random_bytes_never_crash(raw: bytes, path: str) -> None:
    check_one(path, raw, RULES, KNOWLEDGE)


@settings(CI, max_examples=50)
@given(text=st.text(max_size=2000), path=file_names())
def test_random_text_never_crashes(text: str, path: str) -> None:
    check_one(path, text.encode("utf-8", "surrogatepass"), RULES, KNOWLEDGE)


def test_malformed_status_predicate_does_not_recurse() -> None:
    # Found by the mutated fixtures: `NT_SUCCESS()` without an argument made the handle
    # analysis ask value() and truth() of each other forever.
    src = (b"#include <ntddk.h>\nNTSTATUS F(void)\n{\n    HANDLE t;\n"
           b"    NTSTATUS s = ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY,\n"
           b"                                      OBJ_KERNEL_HANDLE, &t);\n"
           b"    if (NT_SUCCESS()) {\n        ZwClose(t);\n    }\n    return s;\n}\n")
    check_one("t.c", src, RULES, KNOWLEDGE)

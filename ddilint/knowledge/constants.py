"""The WDK integer constants the value analysis knows by name (`constants.toml`).

Handle attribute flags (`OBJ_*`) and access masks (`TOKEN_*`, `PROCESS_*`, `GENERIC_*`, ...)
with their header values, and the routines/macros that fill an `OBJECT_ATTRIBUTES`
(`InitializeObjectAttributes`). Data only: adding a constant never needs code.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CONSTANTS_TOML = Path(__file__).resolve().parent / "constants.toml"


@dataclass(frozen=True, slots=True)
class AttributesInitializer:
    """A routine or macro that sets the Attributes of an OBJECT_ATTRIBUTES.

    `object_param` is the argument pointing at the structure written (None when the
    structure is the call's value, `result`); `attributes_param` the argument that becomes
    its Attributes field."""

    name: str
    attributes_param: int
    object_param: int | None = None


@dataclass(frozen=True, slots=True)
class Constants:
    """Named integer constants and the OBJECT_ATTRIBUTES initializers."""

    values: Mapping[str, int]
    initializers: Mapping[str, AttributesInitializer]

    def get(self, name: str) -> int | None:
        """The value of a named constant, or None."""
        return self.values.get(name)

    def names_of(self, value: int, prefix: str | tuple[str, ...]) -> list[str]:
        """Single-bit constants whose name starts with `prefix` (one of several) and whose
        bits make up `value`, largest first; empty when `value` has bits none names."""
        bits = [(n, v) for n, v in self.values.items()
                if n.startswith(prefix) and v and v & (v - 1) == 0]
        out: list[str] = []
        rest = value
        for n, v in sorted(bits, key=lambda item: (-item[1], item[0])):
            if rest & v:
                out.append(n)
                rest &= ~v
        return out if rest == 0 else []


@lru_cache(maxsize=1)
def load_constants() -> Constants:
    """The shipped constant table."""
    raw = tomllib.loads(CONSTANTS_TOML.read_text(encoding="utf-8"))
    values = {str(k): int(v) for k, v in raw.get("constants", {}).items()}
    inits: dict[str, AttributesInitializer] = {}
    for name, spec in raw.get("object_attributes_initializers", {}).items():
        obj = None if spec.get("result") else int(spec["object"])
        inits[name] = AttributesInitializer(name, int(spec["attributes"]), obj)
    return Constants(values, inits)

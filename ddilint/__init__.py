"""ddilint: documented-requirement checks for Windows kernel-driver C/C++."""

from importlib.util import find_spec

__version__ = "0.1.0"


def build() -> str:
    """Which build of the engine this is: "compiled" (a regular install with a C compiler
    at hand compiles the engine: setup.py) or "pure Python"."""
    spec = find_spec("ddilint.analyzer.frontend")
    origin = spec.origin if spec is not None else None
    return "pure Python" if origin is None or origin.endswith(".py") else "compiled"

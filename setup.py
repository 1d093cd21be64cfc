"""Build script: ddilint is a pure-Python package that a regular install also compiles.

Where a C compiler is at hand, `pip install .` compiles the analysis engine
(`ddilint/analyzer/` and `ddilint/knowledge/__init__.py`) with mypyc, which turns the
type-checked modules into C extensions: 10 to 17% less work in a batch run (the parse and
tree-sitter's queries are native in both builds), a third less in the editor. The
compiled modules sit beside their Python sources and give the same findings (the test
suite builds the compiled package and compares). Nothing else changes: rules, plugins,
the command line and the language server stay Python, and third-party rules subclass
`Rule` as before.

The pure-Python package is installed instead, with a warning, when
- compiling fails or no compiler is found (nothing is needed beyond a registry's packages);
- the install is editable (`pip install -e .`): a developer's edits take effect at once;
- `DDILINT_PURE_PYTHON=1` is set.

`ddilint --version` says which build runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from setuptools import Distribution, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


def compiled_modules() -> list[str]:
    """The modules mypyc compiles, as paths relative to this folder."""
    paths = sorted((HERE / "ddilint" / "analyzer").glob("*.py"))
    paths.append(HERE / "ddilint" / "knowledge" / "__init__.py")
    return [p.relative_to(HERE).as_posix() for p in paths]


def wanted() -> bool:
    return os.environ.get("DDILINT_PURE_PYTHON", "").strip() in ("", "0")


class BinaryDistribution(Distribution):
    """A distribution that may hold extensions, so that `build_ext` runs (it only builds
    them then: `MaybeCompiled`) and the wheel is tagged for this platform."""

    def has_ext_modules(self) -> bool:
        return wanted()


class MaybeCompiled(build_ext):
    """Compile the engine with mypyc, or leave the package pure Python if that fails."""

    def run(self) -> None:
        if getattr(self, "editable_mode", False) or self.inplace or not wanted():
            return
        try:
            from mypyc.build import mypycify

            cwd = os.getcwd()
            os.chdir(HERE)  # mypycify reads the paths and writes build/ relative to here
            try:
                extensions = mypycify(compiled_modules(), opt_level="3", group_name="ddilint")
            finally:
                os.chdir(cwd)
            self.check_extensions_list(extensions)
            for ext in extensions:  # what setuptools' finalize_options does for each one
                ext._full_name = self.get_ext_fullname(ext.name)
                self.ext_map[ext._full_name] = ext
                ext._links_to_dynamic = ext._needs_stub = False
                ext._file_name = self.get_ext_filename(ext._full_name)
            self.extensions = extensions
            super().run()
        except (Exception, SystemExit) as exc:  # a compile error, no compiler, mypy's exit
            self._discard_outputs()
            self.extensions = []
            print(f"warning: ddilint: compiling the engine failed ({exc!r}); installing "
                  "the pure-Python package, which gives the same results more slowly",
                  file=sys.stderr)

    def _discard_outputs(self) -> None:
        """Remove whatever part of the compiled set was built: half a build must not ship."""
        for ext in self.extensions:
            try:
                path = Path(self.get_ext_fullpath(ext.name))
            except Exception:
                continue
            path.unlink(missing_ok=True)

    def get_outputs(self) -> list[str]:
        return [p for p in super().get_outputs() if os.path.exists(p)]

    def get_output_mapping(self) -> dict[str, Any]:
        mapping: dict[str, Any] = super().get_output_mapping()
        return {k: v for k, v in mapping.items() if os.path.exists(v)}


if __name__ == "__main__":  # (setuptools runs this file as __main__; tests import it)
    setup(distclass=BinaryDistribution, cmdclass={"build_ext": MaybeCompiled})

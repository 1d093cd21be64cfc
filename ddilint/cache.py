"""The result cache: per-file results kept between runs, keyed by content.

Two kinds of entries live in one SQLite file (`.ddilint_cache/results.sqlite` under the
project root by default):

- a file's **facts** (phase one: its summary, the findings the file alone decides and the
  rules' pending parts; or only its summary, for a file that feeds the model but is not
  reported), keyed by the file's path and content hash and the run's *salt*;
- a file's **findings** (phase three), keyed by the file's path and content hash and the
  *project digest*: the salt plus the path and content hash of every file of the run, so
  that a change anywhere in the driver resolves again the files its facts may reach
  (from their cached facts: only the changed file is parsed).

The salt covers everything else a result depends on: ddilint's version and the files of
the installed package (an edited checkout never reuses stale results), the active rules
and the modules they come from, the knowledge table, and the run's options. A second run
on an unchanged tree finds every file's findings: no parsing, no project model.

A third table remembers each file's content hash with what `stat` said about the file
when it was hashed (size, modification and change times, inode), so that an unchanged
file is not read again to be hashed. The remembered hash is trusted only when all four
are the same and the file had not been modified within `RACY_NS` before it was hashed (a
write in the same clock tick as the hash could otherwise go unseen, as git's index knows).
A file whose bytes differ from the hash it was listed with is analyzed as it is and not
cached. A cache that remembers none of a run's files (a first run) is not asked for their
results: no file is read up front, each is keyed by the hash of the bytes it is analyzed
from, remembered with what `stat` said before they were read. A cache that cannot be
opened or written is switched off with a warning; it never fails a run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pickle
import sqlite3
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import ddilint

CACHE_DIR_NAME = ".ddilint_cache"
_SCHEMA = 7
# Entries not used by the last few runs are dropped, so the file stays about the size of
# the tree's results. A used entry's run stamp is renewed only once it is _RENEW_AFTER runs
# old: rewriting the stamp of every entry a run used was most of the cost of closing the
# cache (35 ms of a 0.9 s pre-commit run with one file edited, on the samples).
_KEEP_RUNS = 8
_RENEW_AFTER = _KEEP_RUNS // 2
# A file modified less than this long before its hash was taken is hashed again next time.
RACY_NS = 2_000_000_000

# What `stat` says about a file, for the content hashes remembered with it.
Stat = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


def stat_key(st: os.stat_result) -> Stat:
    """The parts of a file's `stat` that change when its content can have changed."""
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def content_hash(raw: bytes) -> str:
    """The hash a file's results are keyed by: SHA-256, cut to 128 bits. (Processors run it
    in hardware: on the samples' 43 MB it took 0.03 s where blake2b took 0.07 s, and a
    first run hashes every file before it starts.)"""
    return hashlib.sha256(raw).hexdigest()[:32]


def _package_fingerprint() -> str:
    """Sizes and times of ddilint's own files: a changed checkout changes every key."""
    root = Path(ddilint.__file__).resolve().parent
    h = hashlib.blake2b(digest_size=16)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith((".py", ".json", ".toml", ".so", ".pyd")):
                st = os.stat(os.path.join(dirpath, name))
                h.update(f"{dirpath}/{name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def _module_fingerprint(module: str) -> str:
    mod = sys.modules.get(module)
    path = getattr(mod, "__file__", None)
    if not path:
        return module
    try:
        st = os.stat(path)
    except OSError:
        return module
    return f"{module}:{st.st_size}:{st.st_mtime_ns}"


def run_salt(rules: Sequence[Any], knowledge: Any, options: Any) -> str:
    """The part of every key that is not about the files: version, code, rules,
    knowledge and options."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"schema {_SCHEMA} ddilint {ddilint.__version__} {_package_fingerprint()}".encode())
    for rule in rules:
        cls = type(rule)
        h.update(f"{rule.code} {rule.name} {cls.__module__}.{cls.__qualname__} "
                 f"{_module_fingerprint(cls.__module__)};".encode())
    fingerprint = getattr(knowledge, "fingerprint", "")
    if fingerprint:  # what the table was built from (`Knowledge.fingerprint`)
        h.update(f"knowledge {fingerprint};".encode())
    else:
        h.update(pickle.dumps(dict(getattr(knowledge, "routines", knowledge)), protocol=4))
    fields = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    fields.pop("debug", None)  # only changes the wording of internal-error notices
    fields.pop("file_timeout", None)  # results that hit the time budget are never stored
    h.update(repr(sorted((k, repr(v)) for k, v in fields.items())).encode())
    return h.hexdigest()


def project_digest(salt: str, files: Iterable[tuple[str, str]]) -> str:
    """The key of a run's whole-program facts: the salt and every (path, content hash)."""
    h = hashlib.blake2b(salt.encode(), digest_size=16)
    for path, digest in sorted(files):
        h.update(f"{path}\0{digest}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _stored(text: str) -> str | bytes:
    """How SQLite keeps a key or a path: as text, or, where a file's name is not UTF-8 (its
    bytes come as lone surrogates, which text cannot hold), as the name's own bytes. SQLite
    never finds text equal to bytes, so no two keys become one."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")
    return text


def _loaded(value: str | bytes) -> str:
    """A key or path as `_stored` kept it, as the run names it."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _chunks(items: Sequence[str | bytes],
            size: int = 500) -> Iterable[tuple[Sequence[str | bytes], str]]:
    """`items` in pieces SQLite takes as parameters, each with its `?, ?, ...` list."""
    for i in range(0, len(items), size):
        chunk = items[i : i + size]
        yield chunk, ",".join("?" * len(chunk))


DB_NAME = "results.sqlite"


def _connect(path: Path) -> tuple[sqlite3.Connection, int]:
    """The cache database at `path` (created if need be) and the number of this run."""
    db = sqlite3.connect(path, timeout=10)
    try:
        db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, "
                   "value BLOB NOT NULL, run INTEGER NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER)")
        db.execute("CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, "
                   "size INTEGER, mtime INTEGER, ctime INTEGER, inode INTEGER, "
                   "digest TEXT NOT NULL, hashed INTEGER NOT NULL, run INTEGER NOT NULL)")
        row = db.execute("SELECT value FROM meta WHERE name = 'run'").fetchone()
        run = (row[0] if row else 0) + 1
        db.execute("INSERT OR REPLACE INTO meta VALUES ('run', ?)", (run,))
        db.commit()
    except BaseException:
        db.close()
        raise
    return db, run


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    """Whether SQLite says the file itself is bad ("file is not a database", "database disk
    image is malformed"), not that it is busy, locked or read-only (its subclasses)."""
    return type(exc) is sqlite3.DatabaseError


def _remove_database(path: Path) -> None:
    for name in (path, path.with_name(path.name + "-journal"),
                 path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            name.unlink()


def default_cache_dir(root: Path | None) -> Path:
    """`.ddilint_cache` in the project root (the config file's folder), else here."""
    return (root or Path.cwd()) / CACHE_DIR_NAME


class ResultCache:
    """Get and put pickled per-file results. Every failure turns the cache off."""

    def __init__(self, directory: Path, salt: str) -> None:
        self.directory = directory
        self.salt = salt
        self.hits = 0
        self.misses = 0
        self._db: sqlite3.Connection | None = None
        self._run = 0
        # Keys and paths as SQLite keeps them (`_stored`).
        self._touched: list[str | bytes] = []
        self._touched_paths: list[str | bytes] = []
        try:
            directory.mkdir(parents=True, exist_ok=True)
            ignore = directory / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# created by ddilint\n*\n", encoding="utf-8")
            try:
                self._db, self._run = _connect(directory / DB_NAME)
            except sqlite3.DatabaseError as exc:
                if not _damaged(exc):
                    raise
                # The file is not a database any more (a disk error, a copy cut short): the
                # cache only ever saves work, so a new one replaces it rather than being
                # off in every run from now on.
                print(f"ddilint: warning: result cache unreadable ({exc}); starting a new one",
                      file=sys.stderr)
                _remove_database(directory / DB_NAME)
                self._db, self._run = _connect(directory / DB_NAME)
        except (OSError, sqlite3.Error) as exc:
            self._off(exc)

    def _off(self, exc: BaseException) -> None:
        damaged = isinstance(exc, sqlite3.DatabaseError) and _damaged(exc)
        after = "; a new one starts with the next run" if damaged else ""
        print(f"ddilint: warning: result cache off ({type(exc).__name__}: {exc}){after}",
              file=sys.stderr)
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = None
        if damaged:  # found bad in the middle of the file: not kept to fail every run
            with contextlib.suppress(OSError):
                _remove_database(self.directory / DB_NAME)

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def facts_key(self, path: str, digest: str, checked: bool) -> str:
        """The key of a file's phase-one facts, with the rules' part (`checked`) or only
        its summary."""
        return f"{'c' if checked else 's'}\0{path}\0{digest}\0{self.salt}"

    @staticmethod
    def findings_key(path: str, digest: str, project: str) -> str:
        return f"f\0{path}\0{digest}\0{project}"

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """The cached values of `keys` (those that are cached)."""
        out: dict[str, Any] = {}
        for key, blob in self.get_many_raw(keys).items():
            try:
                out[key] = pickle.loads(blob)
            except Exception:  # a value from an incompatible ddilint: a miss
                self.hits -= 1
                self.misses += 1
        return out

    def get_many_raw(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The cached values of `keys` as pickled bytes (for relaying them unopened)."""
        out: dict[str, bytes] = {}
        if self._db is None or not keys:
            return out
        try:
            for chunk, marks in _chunks(list(map(_stored, keys))):
                for key, value, run in self._db.execute(
                        f"SELECT key, value, run FROM results WHERE key IN ({marks})", chunk):
                    out[_loaded(key)] = value
                    if run <= self._run - _RENEW_AFTER:
                        self._touched.append(key)
        except sqlite3.Error as exc:
            self._off(exc)
            return {}
        self.hits += len(out)
        self.misses += len(keys) - len(out)
        return out

    def known_digests(self, paths: Sequence[str]) -> dict[str, tuple[Stat, str, int]]:
        """Remembered content hashes: path -> (stat when hashed, hash, when it was hashed
        in ns)."""
        out: dict[str, tuple[Stat, str, int]] = {}
        if self._db is None or not paths:
            return out
        try:
            for chunk, marks in _chunks(list(map(_stored, paths))):
                rows = self._db.execute(
                    "SELECT path, size, mtime, ctime, inode, digest, hashed, run FROM digests "
                    f"WHERE path IN ({marks})", chunk)
                for path, size, mtime, ctime, inode, digest, hashed, run in rows:
                    out[_loaded(path)] = ((size, mtime, ctime, inode), digest, hashed)
                    if run <= self._run - _RENEW_AFTER:
                        self._touched_paths.append(path)
        except sqlite3.Error as exc:
            self._off(exc)
            return {}
        return out

    def remember_digests(self, items: Iterable[tuple[str, Stat, str, int]]) -> None:
        """Keep (path, stat when hashed, hash, when it was hashed in ns) for later runs."""
        if self._db is None:
            return
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(_stored(path), *st, digest, hashed, self._run)
                 for path, st, digest, hashed in items])
            self._db.commit()
        except sqlite3.Error as exc:
            self._off(exc)

    def put_many(self, items: Iterable[tuple[str, Any]]) -> None:
        """Store values (pickled)."""
        try:
            blobs = [(k, pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL)) for k, v in items]
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            self._off(exc)
            return
        self.put_many_raw(blobs)

    def put_many_raw(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Store values that are pickled already."""
        if self._db is None:
            return
        try:
            rows = [(_stored(k), v, self._run) for k, v in items]
            self._db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", rows)
            self._db.commit()
        except sqlite3.Error as exc:
            self._off(exc)

    def close(self) -> None:
        """Renew the run stamps of the used entries that are getting old, and forget the
        entries that the last `_KEEP_RUNS` runs did not use."""
        db = self._db
        if db is None:
            return
        try:
            for chunk, marks in _chunks(self._touched):
                db.execute(f"UPDATE results SET run = ? WHERE key IN ({marks})",
                           (self._run, *chunk))
            for chunk, marks in _chunks(self._touched_paths):
                db.execute(f"UPDATE digests SET run = ? WHERE path IN ({marks})",
                           (self._run, *chunk))
            db.execute("DELETE FROM results WHERE run < ?", (self._run - _KEEP_RUNS,))
            db.execute("DELETE FROM digests WHERE run < ?", (self._run - _KEEP_RUNS,))
            db.commit()
            db.close()
        except sqlite3.Error as exc:
            self._off(exc)
        self._db = None

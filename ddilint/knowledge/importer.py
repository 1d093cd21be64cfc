"""Documentation importer: builds the knowledge table ``routines.json``.

This module owns the translation of the WDK DDI reference into facts that the rules use.
It reads

* the full reference pages in ``<shared>/ddi-docs/nf-*.md`` (their source paths come from
  ``ddi-docs/MANIFEST.tsv``) and the seed page ``<shared>/seed/ZwOpenProcessTokenEx.md``;
* the front-matter table ``<shared>/ddi-facts/frontmatter.tsv`` (one row per function page
  of the reference), used for routines whose full page is not in ``ddi-docs``;

and writes one deterministic JSON file (keys sorted, ``indent=1``) that maps each routine
name to its facts: documented IRQL bounds, parameters and their directions, the indices of
the parameters the rules look at (new handle out, handle attributes, object attributes,
desired access, process handle), the routines the page says release what the call gave,
whether it returns an ``NTSTATUS``, the DDI compliance rules, the Zw/Nt twin, and for every
fact the page section it came from.

The pages are CC-BY-4.0: only facts are extracted, never prose. Standard library only; the
simple YAML front matter of the pages is parsed here.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import html
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

GENERATOR_COMMAND = "ddilint knowledge import --shared ../shared -o ddilint/knowledge/routines.json"
URL_BASE = "https://learn.microsoft.com/windows-hardware/drivers/ddi/"
DEFAULT_OUTPUT = Path(__file__).with_name("routines.json")

DOCS_DIR = "ddi-docs"
DOCS_GLOB = "nf-*.md"
MANIFEST = "ddi-docs/MANIFEST.tsv"
SEED_PAGE = "seed/ZwOpenProcessTokenEx.md"
FRONTMATTER_TSV = "ddi-facts/frontmatter.tsv"
CONTENT_PREFIX = "wdk-ddi-src/content/"

#: The IRQL scale of the table, lowest first.
LEVELS: tuple[str, ...] = ("PASSIVE_LEVEL", "APC_LEVEL", "DISPATCH_LEVEL", "DIRQL", "HIGH_LEVEL")
_RANK: dict[str, float] = {
    "PASSIVE_LEVEL": 0,
    "APC_LEVEL": 1,
    "DISPATCH_LEVEL": 2,
    "DIRQL": 3,
    # Between the device levels and HIGH_LEVEL; not on the table's scale itself.
    "IPI_LEVEL": 3.5,
    "HIGH_LEVEL": 4,
}
_LEVEL_ALIASES: dict[str, str] = {
    "PASSIVE_LEVEL": "PASSIVE_LEVEL",
    "PASSIVE": "PASSIVE_LEVEL",
    "PASSIVE LEVEL": "PASSIVE_LEVEL",
    "APC_LEVEL": "APC_LEVEL",
    "DISPATCH_LEVEL": "DISPATCH_LEVEL",
    "DPC_LEVEL": "DISPATCH_LEVEL",
    "DIRQL": "DIRQL",
    "DEVICE_LEVEL": "DIRQL",
    "IPI_LEVEL": "IPI_LEVEL",
    "HIGH_LEVEL": "HIGH_LEVEL",
}

# Header folders preferred when a routine is documented under several headers.
_HEADER_PREFERENCE: tuple[str, ...] = ("wdm", "ntddk", "ntifs")

# HTML tags that occur in the pages. Only these are stripped, so that text such as
# "<= APC_LEVEL" or "<DISPATCH_LEVEL" survives.
_HTML_TAG = re.compile(
    r"</?(?:a|b|i|u|p|br|hr|div|span|strong|em|code|pre|sup|sub|dl|dt|dd|ul|ol|li|table|"
    r"thead|tbody|tr|th|td|img|h[1-6]|blockquote|note|nobr|center|font)\b(?:\s[^<>]*)?/?>",
    re.IGNORECASE,
)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_SECTION = re.compile(r"^## -([A-Za-z][\w-]*)[ \t]*$", re.MULTILINE)
_PARAM = re.compile(r"^### -param[ \t]+([^\s\[]+)[ \t]*(?:\[([^\]\n]*)\])?[^\n]*$", re.MULTILINE)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STATUS = re.compile(r"\bSTATUS_[A-Z0-9_]+\b|\bNTSTATUS\b")


# --------------------------------------------------------------------------------------
# IRQL normalisation


@dataclass(frozen=True)
class IrqlSpec:
    """A normalised ``req.irql`` value.

    ``kind`` is one of ``empty`` (no value), ``level`` (a bound is given), ``any`` (callable
    at any IRQL: the documented maximum is HIGH_LEVEL), ``not-applicable`` (the page says
    the IRQL does not apply), ``conditional`` (the bound depends on arguments or the
    platform, so no single bound is recorded), ``see-remarks`` (no level, only a pointer to
    another section) or ``unrecognised`` (not an IRQL statement).
    """

    max_irql: str | None
    min_irql: str | None
    kind: str
    refers: bool = False


def strip_html(text: str) -> str:
    """Remove HTML comments and known HTML tags, then decode entities."""
    text = _HTML_COMMENT.sub("", text)
    text = _HTML_TAG.sub(" ", text)
    return html.unescape(text)


_OP_WORDS: tuple[tuple[str, str], ...] = (
    (r"\bgreater\s+than\s+or\s+equal\s+to\b", ">="),
    (r"\bless\s+than\s+or\s+equal\s+to\b", "<="),
    (r"\bgreater\s+than\b", ">"),
    (r"\bless\s+than\b", "<"),
)
_LEVEL_EXPR = re.compile(
    r"(?P<op><=|>=|==|=|<|>)?\s*(?:at\s+)?"
    r"(?P<lvl>PASSIVE_LEVEL|PASSIVE\s+LEVEL|PASSIVE|APC_LEVEL|DISPATCH_LEVEL|DPC_LEVEL|"
    r"DIRQL|DEVICE_LEVEL|IPI_LEVEL|HIGH_LEVEL)\b"
    r"(?P<above>\s+or\s+(?:above|higher|greater|below|lower))?",
    re.IGNORECASE,
)
_REFERS = re.compile(r"\bsee\b.*\b(?:remarks|comments|parameters|return\s+value)\b", re.I)
_CONDITION = re.compile(r"\b(?:if|when|unless|otherwise|as\s+long\s+as)\b|[,;]", re.I)


def _representable_below(rank: float, inclusive: bool) -> str | None:
    best: str | None = None
    for level in LEVELS:
        r = _RANK[level]
        if r < rank or (inclusive and r == rank):
            best = level
    return best


def _representable_above(rank: float, inclusive: bool) -> str | None:
    for level in LEVELS:
        r = _RANK[level]
        if r > rank or (inclusive and r == rank):
            return level
    return None


def _bound(op: str, level: str) -> tuple[str | None, str | None] | None:
    """(max, min) for one comparison; None when it cannot be put on the scale."""
    rank = _RANK[level]
    if op in ("", "<=", "=", "=="):
        on_scale = level if level in LEVELS else None
        if op == "<=":
            on_scale = _representable_below(rank, inclusive=True)
        if on_scale is None:
            return None
        return on_scale, (on_scale if op in ("=", "==") else None)
    if op == "<":
        below = _representable_below(rank, inclusive=False)
        return (below, None) if below is not None else None
    if op in (">=", ">"):
        above = _representable_above(rank, inclusive=op == ">=")
        return (None, above) if above is not None else None
    return None


def normalize_irql(raw: str) -> IrqlSpec:
    """Map one ``req.irql`` spelling to a maximum and a minimum IRQL on the table's scale.

    ``<= X`` and a bare ``X`` give a maximum; ``< X`` the next level down; ``= X``/``== X``
    an exact level (maximum and minimum); ``>= X``/``> X`` only a minimum; ``Any level``
    the maximum HIGH_LEVEL (unless a condition follows); alternatives joined by "or" the
    loosest of them.
    """
    text = " ".join(strip_html(raw).split())
    if not text:
        return IrqlSpec(None, None, "empty")
    refers = bool(_REFERS.search(text))
    core = re.sub(r"_\s+LEVEL\b", "_LEVEL", text)
    core = re.sub(r"<\s+=", "<=", core)
    core = re.sub(r"\(\s*([A-Z_]+_LEVEL|DIRQL)\s*\)", r"\1", core)  # <=(APC_LEVEL)
    core = re.sub(r"_IRQL_requires_max_\s*\(?\s*([A-Z_]+)\s*\)?", r"<= \1", core)
    core = re.sub(r"\([^()]*\)", " ", core)  # explanatory parentheses
    core = re.sub(r"\bsee\b.*$", " ", core, flags=re.IGNORECASE)
    core = re.sub(r"\bIRQL\b", " ", core)
    for pattern, op in _OP_WORDS:
        core = re.sub(pattern, op, core, flags=re.IGNORECASE)
    core = " ".join(core.split()).strip(" .,;:")
    lowered = core.lower()
    if lowered.startswith("any"):
        if _CONDITION.search(core) or _LEVEL_EXPR.search(core):
            # "Any level as long as ...", "Any IRQL if ...; <= APC_LEVEL if ...": the bound
            # depends on something the call site does not show; no single maximum.
            return IrqlSpec(None, None, "conditional", refers)
        # Callable at any IRQL: that is a documented maximum, the highest one.
        return IrqlSpec("HIGH_LEVEL", None, "any", refers)
    if lowered in ("not applicable", "n/a"):
        return IrqlSpec(None, None, "not-applicable", refers)
    matches = list(_LEVEL_EXPR.finditer(core))
    if not matches:
        return IrqlSpec(None, None, "see-remarks" if refers else "unrecognised", refers)
    if _CONDITION.search(core):
        return IrqlSpec(None, None, "conditional", refers)
    bounds: list[tuple[str | None, str | None]] = []
    for match in matches:
        level = _LEVEL_ALIASES[" ".join(match.group("lvl").upper().split())]
        op = match.group("op") or ""
        above = (match.group("above") or "").lower()
        if above:
            op = "<=" if ("below" in above or "lower" in above) else ">="
        bound = _bound(op, level)
        if bound is None:
            return IrqlSpec(None, None, "unrecognised", refers)
        bounds.append(bound)
    if len(bounds) > 1 and not re.search(r"\bor\b", core, re.IGNORECASE):
        return IrqlSpec(None, None, "unrecognised", refers)
    # Alternatives ("PASSIVE_LEVEL or DISPATCH_LEVEL"): the loosest bound holds.
    maxes = [b[0] for b in bounds]
    mins = [b[1] for b in bounds]
    max_irql = None if None in maxes else max(maxes, key=lambda lv: _RANK[str(lv)])
    min_irql = None if None in mins else min(mins, key=lambda lv: _RANK[str(lv)])
    return IrqlSpec(max_irql, min_irql, "level", refers)


# --------------------------------------------------------------------------------------
# Page parsing


@dataclass
class Param:
    """One ``### -param`` entry of a page."""

    name: str
    direction: str | None
    optional: bool
    text: str


@dataclass
class Page:
    """The parts of one reference page that the importer uses."""

    path: str  # source path under wdk-ddi-src/content (or the shared-relative path)
    front: dict[str, str | list[str]]
    sections: dict[str, str]
    params: list[Param] = field(default_factory=list)
    seed: bool = False

    def value(self, key: str) -> str:
        """A scalar front-matter value ('' when absent)."""
        got = self.front.get(key, "")
        return got if isinstance(got, str) else ", ".join(got)

    def names(self, key: str) -> list[str]:
        """A list front-matter value ([] when absent)."""
        got = self.front.get(key, [])
        if isinstance(got, str):
            return [got] if got else []
        return got


def parse_front_matter(text: str) -> tuple[dict[str, str | list[str]], str]:
    """Split a page into its front matter (simple YAML subset) and its body."""
    lines = text.split("\n")
    front: dict[str, str | list[str]] = {}
    if not lines or lines[0].strip() != "---":
        return front, text
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        return front, text
    key: str | None = None
    for line in lines[1:end]:
        item = re.match(r"^\s*-\s+(.*?)\s*$", line)
        if item is not None and key is not None:
            current = front.get(key)
            values = current if isinstance(current, list) else []
            values.append(item.group(1).strip("'\""))
            front[key] = values
            continue
        pair = re.match(r"^([A-Za-z0-9_.-]+):(?:\s(.*))?$", line)
        if pair is None:
            continue
        key = pair.group(1)
        value = (pair.group(2) or "").strip()
        front[key] = value if value else []
    return front, "\n".join(lines[end + 1 :])


def _direction(annotation: str | None) -> tuple[str | None, bool]:
    if annotation is None:
        return None, False
    tokens = {t.strip().lower() for t in re.split(r"[,/]", annotation) if t.strip()}
    optional = "optional" in tokens
    has_in = "in" in tokens
    has_out = "out" in tokens
    if has_in and has_out:
        return "in, out", optional
    if has_in:
        return "in", optional
    if has_out:
        return "out", optional
    return None, optional


def parse_page(text: str, path: str) -> Page:
    """Parse the text of one reference page (LF or CRLF line ends)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    front, body = parse_front_matter(text)
    sections: dict[str, str] = {}
    heads = list(_SECTION.finditer(body))
    for i, head in enumerate(heads):
        stop = heads[i + 1].start() if i + 1 < len(heads) else len(body)
        name = head.group(1).lower()
        sections.setdefault(name, body[head.end() : stop])
    page = Page(path=path, front=front, sections=sections)
    params_text = sections.get("parameters", "")
    found = list(_PARAM.finditer(params_text))
    for i, match in enumerate(found):
        stop = found[i + 1].start() if i + 1 < len(found) else len(params_text)
        direction, optional = _direction(match.group(2))
        name = match.group(1).strip("*`")
        page.params.append(Param(name, direction, optional, params_text[match.end() : stop]))
    return page


def plain_text(markdown: str) -> str:
    """Markdown/HTML section text reduced to plain words (links to their text)."""
    text = _HTML_COMMENT.sub("", markdown)
    text = _MD_LINK.sub(r"\1", text)
    text = re.sub(r"</?(?:li|p|tr|dt|dd|div|br|ul|ol|table)\b[^<>]*>", "\n\n", text, flags=re.I)
    text = _HTML_TAG.sub(" ", text)
    text = re.sub(r"^[ \t]*(?:[-*+]|\d+\.)[ \t]+", "\n", text, flags=re.MULTILINE)  # list items
    text = text.replace("**", "").replace("*", "").replace("`", "")
    text = re.sub(r"^\s*>\s?(?:\[!\w+\])?", "", text, flags=re.MULTILINE)
    return html.unescape(text)


def sentences(markdown: str) -> list[str]:
    """Plain-text sentences of a section (list items and paragraphs end a sentence)."""
    text = plain_text(markdown)
    out: list[str] = []
    for block in re.split(r"\n\s*\n|\n\s*(?=[-*+] |\d+\. )", text):
        block = " ".join(block.split())
        if not block:
            continue
        out.extend(s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"(])", block) if s)
    return out


# --------------------------------------------------------------------------------------
# Facts from one page

_RELEASE_NAME = re.compile(r"\b((?:Zw|Nt|Ob|Ex|Ps|Io|Ke|Mm|Se|Rtl|Po|Fs|Flt)[A-Z]\w*)\b")
_RELEASE_KIND = re.compile(r"Close|Dereference|Free|Release")
_CLOSE_KIND = re.compile(r"^(?:ZwClose|NtClose|ObCloseHandle|CloseHandle)$")
_RELEASE_VERB = re.compile(r"\b(?:releas|clos|free|dereferenc|decrement)\w*", re.I)
_RELEASE_DUTY = re.compile(
    r"\b(?:must|should|is\s+responsible|are\s+responsible|needs?\s+to|can)\b"
    r"|^(?:Close|Release|Free|Dereference|Call|To)\b|\b(?:calls|releases)\b"
    r"|\bcall\b[^.]*\bto\s+(?:close|release|free|dereference|decrement)\b",
    re.I,
)
_RELEASE_REJECT = re.compile(
    r"^If\b(?![^,]*\b(?:succe\w*|non-NULL|successful)\b)|not\s+yet\s+been\s+released|caller-supplied\s+routine|\bis\s+released,|"
    r"\bdo\s+not\b|instead\s+of",
    re.I,
)
_NT_NOTE = re.compile(r'use\s+the\s+name\s+"?((?:Nt|Zw)[A-Z]\w*)"?\s+instead', re.I)
_RECEIVES_HANDLE = re.compile(
    r"\b(?:receives?|writes?|returns?|returned|contains?|obtains?)\b[^.]*?\bhandle\b"
    r"|^\s*handle\s+(?:for|to)\b",
    re.I,
)
_IRQL_REQUIREMENT = re.compile(
    r"\bIRQL\s*(?P<op><=|>=|==|=|<|>)\s*(?P<lvl>[A-Z_]+_LEVEL|DIRQL)\b"
    r"|\bIRQL\s+of\s+(?P<lvl2>[A-Z_]+_LEVEL|DIRQL)(?P<above>\s+or\s+(?:above|higher|below|lower))?"
)
_REMARK_CONDITION = re.compile(
    r"\b(?:if|when|unless|however|otherwise|only|except|whether)\b|\bor\b", re.I
)
_REMARK_DUTY = re.compile(r"\b(?:must|should|assumes?|requires?)\b", re.I)


def _release_routines(page: Page, routine: str, has_handle_out: bool) -> tuple[list[str], str]:
    """Routines the page says release what the call gave, and the section saying so."""
    if _RELEASE_KIND.search(routine):
        return [], ""
    blocks: list[tuple[str, str]] = [(f"Parameters: {p.name}", p.text) for p in page.params]
    blocks.append(("Returns", page.sections.get("returns", "")))
    blocks.append(("Remarks", page.sections.get("remarks", "")))
    found: list[str] = []
    where = ""
    for section, text in blocks:
        said = sentences(text)
        for i, sentence in enumerate(said):
            if not _RELEASE_VERB.search(sentence) or not _RELEASE_DUTY.search(sentence):
                continue
            if _RELEASE_REJECT.search(sentence):
                continue
            names = _RELEASE_NAME.findall(sentence)
            if sentence.rstrip().endswith(":"):
                # "... by calling one of the following functions:" and a list.
                for item in said[i + 1 :]:
                    head = _RELEASE_NAME.match(item.lstrip("-*+ "))
                    if head is None:
                        break
                    names.append(head.group(1))
            for name in names:
                if name == routine or not _RELEASE_KIND.search(name) or name in found:
                    continue
                if _CLOSE_KIND.match(name) and not has_handle_out:
                    continue
                found.append(name)
                where = where or section
    return found, where


def _remarks_irql(page: Page, routine: str) -> IrqlSpec | None:
    """An IRQL bound that the Remarks state without condition, or None."""
    subject = re.compile(
        r"^(?:Callers?\b|The\s+caller\b|A\s+caller\b|Drivers?\s+(?:must|should)\b|"
        r"The\s+driver\s+(?:must|should)\b|" + re.escape(routine) + r"\b)"
    )
    specs: set[tuple[str | None, str | None]] = set()
    for sentence in sentences(page.sections.get("remarks", "")):
        if not subject.match(sentence) or not _REMARK_DUTY.search(sentence):
            continue
        if _REMARK_CONDITION.search(sentence):
            continue
        found = list(_IRQL_REQUIREMENT.finditer(sentence))
        if len(found) != 1:
            continue
        match = found[0]
        if match.group("lvl"):
            expr = f"{match.group('op')} {match.group('lvl')}"
        else:
            above = (match.group("above") or "").lower()
            op = "" if not above else ("<=" if "below" in above or "lower" in above else ">=")
            expr = f"{op} {match.group('lvl2')}"
        spec = normalize_irql(expr)
        if spec.kind != "level":
            continue
        specs.add((spec.max_irql, spec.min_irql))
    if len(specs) != 1:
        return None
    max_irql, min_irql = next(iter(specs))
    return IrqlSpec(max_irql, min_irql, "level")


@dataclass
class PageFacts:
    """Facts a full page gives for one routine."""

    params: list[dict[str, object]]
    indices: dict[str, int]
    index_sources: dict[str, str]
    release: list[str]
    release_section: str
    returns_status: bool | None
    irql_from_remarks: IrqlSpec | None
    twin_names: dict[str, str]  # name -> section saying so


def page_facts(page: Page, routine: str) -> PageFacts:
    """Extract the per-routine facts of a full page."""
    params: list[dict[str, object]] = [
        {"direction": p.direction, "name": p.name} for p in page.params
    ]
    indices: dict[str, int] = {}
    index_sources: dict[str, str] = {}

    def put(key: str, index: int) -> None:
        if key not in indices:
            indices[key] = index
            index_sources[key] = f"Parameters: {page.params[index].name}"

    for i, p in enumerate(page.params):
        lowered = p.name.lower()
        text = " ".join(plain_text(p.text).split())
        if p.direction == "out" and _RECEIVES_HANDLE.search(text):
            put("handle_out_param", i)
        if lowered == "handleattributes":
            put("attributes_param", i)
        if lowered == "objectattributes":
            put("object_attributes_param", i)
        if lowered == "desiredaccess":
            put("access_param", i)
        if lowered == "processhandle" and p.direction == "in":
            put("process_handle_param", i)
    release, release_section = _release_routines(page, routine, "handle_out_param" in indices)
    returns_text = " ".join(plain_text(page.sections.get("returns", "")).split())
    # No mention of a status (or no Returns section): False. A Returns section that only
    # refers to another page ("See the ZwXxx equivalent"): unknown.
    returns_status: bool | None = bool(_STATUS.search(returns_text))
    if re.match(r"See\b", returns_text):
        returns_status = None
    irql = normalize_irql(page.value("req.irql"))
    from_remarks = _remarks_irql(page, routine) if irql.kind == "see-remarks" else None
    twins: dict[str, str] = {}
    for name in page.names("api_name"):
        twins.setdefault(name, "api_name")
    for word in re.split(r"[,\s]+", page.value("ms.keywords")):
        name = word.rsplit("/", 1)[-1]
        if _IDENT.match(name):
            twins.setdefault(name, "ms.keywords")
    for sentence in sentences(page.sections.get("remarks", "")):
        for name in _NT_NOTE.findall(sentence):
            twins.setdefault(name, "Remarks")
    return PageFacts(
        params,
        indices,
        index_sources,
        release,
        release_section,
        returns_status,
        from_remarks,
        twins,
    )


# --------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class TsvRow:
    """One row of frontmatter.tsv."""

    api_name: str
    folder: str
    irql: str
    compliance: str
    header: str
    path: str


def read_tsv(path: Path) -> list[TsvRow]:
    """Rows of frontmatter.tsv, in file order."""
    rows: list[TsvRow] = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        for row in reader:
            name = (row.get("api_name") or "").strip()
            if not name:
                continue
            rows.append(
                TsvRow(
                    api_name=name,
                    folder=(row.get("header_folder") or "").strip(),
                    irql=row.get("req.irql") or "",
                    compliance=row.get("req.ddi-compliance") or "",
                    header=(row.get("req.header") or "").strip(),
                    path=(row.get("source_path") or "").strip(),
                )
            )
    return rows


def read_manifest(path: Path) -> dict[str, str]:
    """File name -> source path under wdk-ddi-src/content."""
    out: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            source = (row.get("source_path") or "").strip()
            if source.startswith(CONTENT_PREFIX):
                source = source[len(CONTENT_PREFIX) :]
            out[(row.get("file") or "").strip()] = source
    return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def input_hashes(shared: Path) -> dict[str, str]:
    """SHA-256 of every input, keyed by its path relative to the shared directory."""
    combined = hashlib.sha256()
    for page in sorted((shared / DOCS_DIR).glob(DOCS_GLOB), key=lambda p: p.name):
        combined.update(f"{page.name}\0{_sha256(page.read_bytes())}\n".encode())
    return {
        f"{DOCS_DIR}/{DOCS_GLOB}": combined.hexdigest(),
        MANIFEST: _sha256((shared / MANIFEST).read_bytes()),
        SEED_PAGE: _sha256((shared / SEED_PAGE).read_bytes()),
        FRONTMATTER_TSV: _sha256((shared / FRONTMATTER_TSV).read_bytes()),
    }


def _folder_rank(path: str) -> tuple[int, str]:
    folder = path.split("/", 1)[0]
    if folder in _HEADER_PREFERENCE:
        return _HEADER_PREFERENCE.index(folder), path
    return len(_HEADER_PREFERENCE), path


def _compliance(value: str) -> list[str]:
    return sorted({c.strip() for c in strip_html(value).split(",") if c.strip()})


def _twin_of(name: str) -> str | None:
    if re.match(r"^Zw[A-Z]", name):
        return "Nt" + name[2:]
    if re.match(r"^Nt[A-Z]", name):
        return "Zw" + name[2:]
    return None


def _url(page: str) -> str | None:
    if not page.endswith(".md") or page.startswith(("seed/", "ddi-docs/")):
        return None
    return URL_BASE + page[: -len(".md")]


# --------------------------------------------------------------------------------------
# The table


@dataclass
class _Candidate:
    """A page that documents a routine name, with its preference key."""

    key: tuple[int, int, int, str]
    page: Page


def _load_pages(shared: Path) -> tuple[list[Page], dict[str, list[TsvRow]], list[TsvRow]]:
    rows = read_tsv(shared / FRONTMATTER_TSV)
    by_name: dict[str, list[TsvRow]] = {}
    for row in rows:
        by_name.setdefault(row.api_name, []).append(row)
    manifest = read_manifest(shared / MANIFEST)
    pages: list[Page] = []
    for file in sorted((shared / DOCS_DIR).glob(DOCS_GLOB), key=lambda p: p.name):
        text = file.read_bytes().decode("utf-8-sig")
        pages.append(parse_page(text, manifest.get(file.name) or f"{DOCS_DIR}/{file.name}"))
    seed = parse_page((shared / SEED_PAGE).read_bytes().decode("utf-8-sig"), SEED_PAGE)
    seed.seed = True
    seed_names = seed.names("api_name")
    if seed_names and seed_names[0] in by_name:
        seed.path = sorted((r.path for r in by_name[seed_names[0]]), key=_folder_rank)[0]
    pages.append(seed)
    return pages, by_name, rows


def _irql_fields(
    raw: str, spec: IrqlSpec, path: str, entry: dict[str, object], sources: dict[str, str]
) -> None:
    # The value as the page writes it (a short front-matter fact, shown by
    # `ddilint knowledge show` and in citations), and what the table makes of it.
    text = " ".join(strip_html(raw).split())
    entry["irql_text"] = text or None
    if text:
        sources["irql_text"] = f"{path}#req.irql"
    entry["max_irql"] = spec.max_irql
    entry["min_irql"] = spec.min_irql
    if spec.max_irql is not None:
        sources["max_irql"] = f"{path}#req.irql"
    if spec.min_irql is not None:
        sources["min_irql"] = f"{path}#req.irql"


@dataclass
class _Stats:
    see_remarks_resolved: list[str] = field(default_factory=list)
    see_remarks_unresolved: list[str] = field(default_factory=list)
    irql_kinds: dict[str, int] = field(default_factory=dict)  # routines per IrqlSpec.kind


def _build(shared: Path) -> tuple[dict[str, object], _Stats]:
    pages, by_name, _rows = _load_pages(shared)
    stats = _Stats()
    candidates: dict[str, list[_Candidate]] = {}
    for page in pages:
        for position, name in enumerate(page.names("api_name")):
            pref = (
                int(page.seed),
                0 if position == 0 else 1,
                _folder_rank(page.path)[0],
                page.path,
            )
            candidates.setdefault(name, []).append(_Candidate(pref, page))
    facts: dict[str, tuple[Page, PageFacts]] = {}
    mentioned: dict[str, dict[str, str]] = {}  # twin name -> {"page#section" of a mention}
    for name, found in candidates.items():
        best = min(found, key=lambda c: c.key).page
        facts[name] = (best, page_facts(best, name))
    for name, (page, pf) in facts.items():
        for other, section in pf.twin_names.items():
            mentioned.setdefault(name, {}).setdefault(other, f"{page.path}#{section}")

    known = set(by_name) | set(facts)
    routines: dict[str, object] = {}
    for name in sorted(set(by_name) | set(facts)):
        entry: dict[str, object] = {}
        sources: dict[str, str] = {}
        if name in facts:
            page, pf = facts[name]
            path = page.path
            header = strip_html(page.value("req.header")).strip() or None
            spec = normalize_irql(page.value("req.irql"))
            compliance = _compliance(page.value("req.ddi-compliance"))
            _irql_fields(page.value("req.irql"), spec, path, entry, sources)
            if spec.kind == "see-remarks":
                resolved = pf.irql_from_remarks
                if resolved is not None:
                    stats.see_remarks_resolved.append(name)
                    entry["max_irql"] = resolved.max_irql
                    entry["min_irql"] = resolved.min_irql
                    for key in ("max_irql", "min_irql"):
                        if entry[key] is not None:
                            sources[key] = f"{path}#Remarks"
                else:
                    stats.see_remarks_unresolved.append(name)
            entry["params"] = pf.params
            if pf.params:
                sources["params"] = f"{path}#Parameters"
            for key in (
                "handle_out_param",
                "attributes_param",
                "object_attributes_param",
                "access_param",
                "process_handle_param",
            ):
                entry[key] = pf.indices.get(key)
                if key in pf.indices:
                    sources[key] = f"{path}#{pf.index_sources[key]}"
            entry["release"] = pf.release
            if pf.release:
                sources["release"] = f"{path}#{pf.release_section}"
            entry["returns_status"] = pf.returns_status
            if pf.returns_status is not None:
                sources["returns_status"] = f"{path}#Returns"
        else:
            row = sorted(
                by_name[name],
                key=lambda r: (not normalize_irql(r.irql).max_irql, _folder_rank(r.path)),
            )[0]
            path = row.path
            header = strip_html(row.header).strip() or None
            spec = normalize_irql(row.irql)
            compliance = sorted(
                {c for r in by_name[name] if r.path == path for c in _compliance(r.compliance)}
            )
            _irql_fields(row.irql, spec, path, entry, sources)
            if spec.kind == "see-remarks":
                stats.see_remarks_unresolved.append(name)
            entry["params"] = []
            for key in (
                "handle_out_param",
                "attributes_param",
                "object_attributes_param",
                "access_param",
                "process_handle_param",
            ):
                entry[key] = None
            entry["release"] = []
            entry["returns_status"] = None
        entry["header"] = header
        if header is not None:
            sources["header"] = f"{path}#req.header"
        entry["page"] = path
        entry["url"] = _url(path)
        entry["compliance"] = compliance
        if compliance:
            sources["compliance"] = f"{path}#req.ddi-compliance"
        twin = _twin_of(name)
        entry["twin"] = None
        if twin is not None:
            if twin in known:
                entry["twin"] = twin
                if twin in facts:
                    sources["twin"] = f"{facts[twin][0].path}#api_name"
                else:
                    twin_row = sorted(by_name[twin], key=lambda r: _folder_rank(r.path))[0]
                    sources["twin"] = f"{twin_row.path}#api_name"
            elif twin in mentioned.get(name, {}):
                entry["twin"] = twin
                sources["twin"] = mentioned[name][twin]
        entry["sources"] = dict(sorted(sources.items()))
        has_fact = any(
            (
                entry["max_irql"] is not None,
                entry["min_irql"] is not None,
                bool(compliance),
                bool(entry["params"]),
                bool(entry["release"]),
                entry["returns_status"] is not None,
                entry["twin"] is not None,
            )
        )
        if has_fact:
            routines[name] = entry
            kind = spec.kind + (" (refers to a section)" if spec.refers else "")
            stats.irql_kinds[kind] = stats.irql_kinds.get(kind, 0) + 1
    table: dict[str, object] = {
        "generator": {"command": GENERATOR_COMMAND, "inputs": input_hashes(shared)},
        "routines": routines,
    }
    return table, stats


def build_table(shared: Path) -> dict[str, object]:
    """The knowledge table built from the documentation under ``shared``."""
    return _build(shared)[0]


def render(table: dict[str, object]) -> str:
    """The exact text written to routines.json."""
    return json.dumps(table, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------------------
# Reporting and command line


def irql_spelling_table(rows: Iterable[TsvRow]) -> list[tuple[str, int, IrqlSpec]]:
    """Every distinct ``req.irql`` spelling with its count and normalisation."""
    counts: dict[str, int] = {}
    for row in rows:
        if row.irql.strip():
            counts[row.irql] = counts.get(row.irql, 0) + 1
    return [(s, counts[s], normalize_irql(s)) for s in sorted(counts)]


def _as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def stats_lines(table: dict[str, object], stats: _Stats) -> list[str]:
    """Counts printed by --stats."""
    routines = table["routines"]
    assert isinstance(routines, dict)
    entries = [e for e in routines.values() if isinstance(e, dict)]

    def count(key: str) -> int:
        return sum(1 for e in entries if e.get(key) not in (None, [], ""))

    lines = [f"routines: {len(entries)}", f"with max_irql: {count('max_irql')}"]
    for level in LEVELS:
        n = sum(1 for e in entries if e.get("max_irql") == level)
        lines.append(f"  max_irql {level}: {n}")
    lines.append(f"with min_irql: {count('min_irql')}")
    for level in LEVELS:
        n = sum(1 for e in entries if e.get("min_irql") == level)
        if n:
            lines.append(f"  min_irql {level}: {n}")
    lines.append(f"with params (full page): {count('params')}")
    for key in (
        "handle_out_param",
        "attributes_param",
        "object_attributes_param",
        "access_param",
        "process_handle_param",
        "release",
    ):
        lines.append(f"with {key}: {count(key)}")
    lines.append(f"returns_status true: {sum(1 for e in entries if e.get('returns_status'))}")
    lines.append(f"with compliance: {count('compliance')}")
    for rule in ("PowerIrpDDis", "HwStorPortProhibitedDDIs"):
        n = sum(1 for e in entries if rule in _as_list(e.get("compliance")))
        lines.append(f"  compliance {rule}: {n}")
    lines.append(f"twins: {count('twin')}")
    for kind, n in sorted(stats.irql_kinds.items()):
        lines.append(f"  req.irql kind {kind}: {n}")
    lines.append(
        f"see-Remarks IRQL: resolved {len(stats.see_remarks_resolved)} "
        f"({', '.join(sorted(stats.see_remarks_resolved))}), "
        f"unresolved {len(stats.see_remarks_unresolved)}"
    )
    return lines


def _describe_difference(old_text: str, new_text: str) -> str:
    try:
        old = json.loads(old_text)
    except ValueError:
        return "the file on disk is not valid JSON"
    new = json.loads(new_text)
    parts: list[str] = []
    if not isinstance(old, dict):
        return "the file on disk is not a JSON object"
    if old.get("generator") != new.get("generator"):
        old_inputs = (old.get("generator") or {}).get("inputs") or {}
        new_inputs = new["generator"]["inputs"]
        changed = sorted(
            k for k in set(old_inputs) | set(new_inputs) if old_inputs.get(k) != new_inputs.get(k)
        )
        parts.append("generator inputs differ: " + (", ".join(changed) or "command"))
    old_r = old.get("routines") or {}
    new_r = new["routines"]
    added = sorted(set(new_r) - set(old_r))
    removed = sorted(set(old_r) - set(new_r))
    changed_r = sorted(k for k in set(old_r) & set(new_r) if old_r[k] != new_r[k])
    for label, names in (("missing", added), ("extra", removed), ("changed", changed_r)):
        if names:
            shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
            parts.append(f"{len(names)} routines {label}: {shown}")
    if not parts:
        parts.append("formatting differs (re-run the import)")
    return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``ddilint knowledge import``."""
    parser = argparse.ArgumentParser(
        prog="ddilint knowledge import",
        description="Build the routine knowledge table from the WDK DDI documentation.",
    )
    parser.add_argument(
        "--shared",
        type=Path,
        default=Path("..") / "shared",
        help="the shared directory (default: ../shared)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="the JSON file to write (default: the packaged routines.json)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the file differs from a fresh import",
    )
    parser.add_argument("--stats", action="store_true", help="print counts")
    parser.add_argument(
        "--irql-table",
        action="store_true",
        help="print every req.irql spelling and its normalisation",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    shared: Path = args.shared
    output: Path = args.output
    if not (shared / FRONTMATTER_TSV).is_file():
        print(f"error: {shared / FRONTMATTER_TSV} not found", file=sys.stderr)
        return 2
    table, stats = _build(shared)
    text = render(table)
    status = 0
    if args.check:
        try:
            current = output.read_text(encoding="utf-8")
        except OSError as error:
            print(f"{output}: cannot read ({error.strerror})", file=sys.stderr)
            return 1
        if current != text:
            print(f"{output} is stale: {_describe_difference(current, text)}", file=sys.stderr)
            status = 1
        else:
            print(f"{output} is up to date")
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
    if args.irql_table:
        for spelling, n, spec in irql_spelling_table(read_tsv(shared / FRONTMATTER_TSV)):
            print(
                f"{n:5d}  {spelling!r:70} -> max={spec.max_irql} min={spec.min_irql} [{spec.kind}]"
            )
    if args.stats:
        for line in stats_lines(table, stats):
            print(line)
    return status


if __name__ == "__main__":
    sys.exit(main())

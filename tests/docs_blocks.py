"""The fenced code blocks of the project's Markdown documents, with the ``docs-test`` markers
that tell tests/test_docs_run.py what to do with each (the vocabulary is in its docstring),
and the checks that need no server: parsing the JSON, YAML and properties blocks with their
own libraries, and the Markdown itself (misplaced markers, table rows outside a table)."""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from modelserve.config import ConfigError, Settings, load_settings, parse_properties

REPOSITORY = Path(__file__).resolve().parents[1]
SHELL = ("sh", "bash")
PYTHON = ("python",)
RUNNABLE = SHELL + PYTHON
PARSED = ("json", "yaml", "properties")
SAMPLE = ("text",)
LANGUAGES = RUNNABLE + PARSED + SAMPLE
# keyword -> whether it takes an argument (a skip must say why; the others take none).
KEYWORDS = {"skip": True, "background": False, "fails": False, "output": False}
MARKER = re.compile(r"<!--\s*docs-test:\s*(?P<body>.*?)\s*-->", re.DOTALL)
# What a line of an ``output`` block may leave out: any run of characters.
ELISION = "…"


def documents() -> list[Path]:
    """Every document whose blocks are tested, in a fixed order (README first)."""
    return [
        REPOSITORY / "README.md",
        *sorted((REPOSITORY / "docs").glob("*.md")),
        REPOSITORY / "examples" / "digits" / "README.md",
        REPOSITORY / "benchmarks" / "README.md",
    ]


def shown(path: Path) -> Path:
    """``path`` as the reports show it: relative to the repository when it is inside."""
    return path.relative_to(REPOSITORY) if path.is_relative_to(REPOSITORY) else path


@dataclass(frozen=True)
class Marker:
    """A ``<!-- docs-test: keyword[: argument] -->`` comment right before a block."""

    keyword: str
    argument: str


@dataclass(frozen=True)
class Block:
    """One fenced code block of a document."""

    document: Path
    line: int  # of the opening fence, from 1
    language: str
    text: str
    marker: Marker | None = None

    def where(self) -> str:
        """``docs/protocols.md:137``."""
        return f"{shown(self.document)}:{self.line}"

    @property
    def keyword(self) -> str | None:
        """The marker's keyword, if the block has one."""
        return self.marker.keyword if self.marker else None

    @property
    def runnable(self) -> bool:
        """Whether the block is run (a shell or Python block that is not skipped)."""
        return self.language in RUNNABLE and self.keyword != "skip"


@dataclass
class Document:
    """A document's blocks, and what is wrong with its Markdown (empty when nothing is)."""

    path: Path
    blocks: list[Block]
    problems: list[str]


def _parse_marker(text: str) -> Marker | str:
    """The marker in an HTML comment, or why it is not a valid one."""
    match = MARKER.fullmatch(text.strip())
    if match is None:
        return "a docs-test marker must be an HTML comment of its own"
    keyword, _, argument = match["body"].partition(":")
    keyword, argument = keyword.strip(), argument.strip()
    if keyword not in KEYWORDS:
        return f"unknown docs-test keyword {keyword!r} (known: {', '.join(KEYWORDS)})"
    if KEYWORDS[keyword] and not argument:
        return f"'{keyword}' needs a reason: <!-- docs-test: {keyword}: why -->"
    if not KEYWORDS[keyword] and argument:
        return f"'{keyword}' takes no argument"
    return Marker(keyword, argument)


def _stray_table_rows(tokens: list[Token], index: int) -> bool:
    """Whether the paragraph opened at ``tokens[index]`` is made of ``| … |`` lines: table rows
    that no table holds (a table ends at its first blank line), shown as one run-on paragraph."""
    lines = tokens[index + 1].content.splitlines()
    return bool(lines) and all(line.strip().startswith("|") for line in lines)


def read_document(path: Path) -> Document:
    """Parse ``path`` with a CommonMark parser (tables on, as GitHub renders them)."""
    tokens = MarkdownIt("commonmark").enable("table").parse(path.read_text())
    blocks: list[Block] = []
    problems: list[str] = []
    relative = shown(path)
    for index, token in enumerate(tokens):
        line = token.map[0] + 1 if token.map else 0
        if token.type == "html_block" and "docs-test:" in token.content:
            parsed = _parse_marker(token.content)
            if isinstance(parsed, str):
                problems.append(f"{relative}:{line}: {parsed}")
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            if following is None or following.type != "fence":
                problems.append(
                    f"{relative}:{line}: a docs-test marker must come right before a block"
                )
        elif token.type == "inline" and "docs-test:" in token.content:
            problems.append(f"{relative}:{line}: a docs-test marker must be on lines of its own")
        elif token.type == "paragraph_open" and _stray_table_rows(tokens, index):
            problems.append(f"{relative}:{line}: table rows outside a table (after a blank line)")
        elif token.type == "code_block":
            problems.append(f"{relative}:{line}: an indented code block; fence it, with a language")
        elif token.type == "fence":
            language = token.info.split()[0] if token.info.strip() else ""
            if language not in LANGUAGES:
                problems.append(
                    f"{relative}:{line}: block language {language!r} is not one of {LANGUAGES}"
                )
            previous = tokens[index - 1] if index else None
            marker = None
            if previous is not None and previous.type == "html_block":
                parsed = _parse_marker(previous.content)
                marker = parsed if isinstance(parsed, Marker) else None
            blocks.append(Block(path, line, language, token.content, marker))
    problems += _marker_misuse(blocks)
    return Document(path, blocks, problems)


def _marker_misuse(blocks: list[Block]) -> list[str]:
    """Markers on blocks they cannot apply to."""
    problems = []
    for index, block in enumerate(blocks):
        keyword = block.keyword
        if keyword in ("background", "fails") and block.language not in SHELL:
            problems.append(f"{block.where()}: '{keyword}' applies to sh/bash blocks only")
        if keyword == "output":
            before = blocks[index - 1] if index else None
            if block.language not in SAMPLE or before is None or not before.runnable:
                problems.append(
                    f"{block.where()}: 'output' marks a text block right after a run block"
                )
    return problems


def check_parsed(block: Block) -> str | None:
    """Parse a json / yaml / properties block with its own library; None when it parses, else
    what is wrong. A properties block must hold only modelserve settings, with valid values."""
    try:
        if block.language == "json":
            json.loads(block.text)
        elif block.language == "yaml":
            yaml.safe_load(block.text)
        elif block.language == "properties":
            return _check_properties(block.text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        return str(exc)
    return None


def _check_properties(text: str) -> str | None:
    unknown = sorted(set(parse_properties(text)) - set(Settings.model_fields))
    if unknown:
        return f"not modelserve settings: {', '.join(unknown)}"
    with tempfile.NamedTemporaryFile("w", suffix=".properties") as config:
        config.write(text)
        config.flush()
        try:
            load_settings(Path(config.name), environ={})
        except ConfigError as exc:
            return str(exc)
    return None


def missing_output(expected: str, output: str) -> list[str]:
    """The lines of ``expected`` that ``output`` lacks: each must match a line of ``output``,
    in order, with runs of blanks counting as one (tables pad their columns to the widest
    value) and ``…`` matching any run of characters. Blank lines and lines of ``…`` alone
    stand for lines left out."""
    actual = [" ".join(line.split()) for line in output.splitlines()]
    position = 0
    for index, wanted in enumerate(" ".join(line.split()) for line in expected.splitlines()):
        if wanted in ("", ELISION):
            continue
        pattern = re.compile(".*?".join(re.escape(part) for part in wanted.split(ELISION)))
        while position < len(actual) and not pattern.fullmatch(actual[position]):
            position += 1
        if position == len(actual):
            return expected.splitlines()[index:]
        position += 1
    return []

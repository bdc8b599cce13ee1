"""The documents' examples, run: every fenced block of README.md, docs/*.md,
examples/digits/README.md and benchmarks/README.md, one test per document.

* ``sh`` / ``bash`` blocks run with ``bash -e -o pipefail``, ``python`` blocks with the
  virtualenv's python, in document order, in one session per document: the repository root as
  working directory, the virtualenv active (its ``bin`` first on ``PATH``), and what a shell
  block exports or ``cd``s into carried to the next block, as in a terminal. curl fails on an
  HTTP error status, showing the body (a private ``.curlrc`` with ``fail-with-body``: curl
  7.76 or later).
* ``json`` blocks are parsed with a JSON parser, ``yaml`` with ``yaml.safe_load``,
  ``properties`` with ``modelserve.config.parse_properties`` and then ``load_settings``, so
  every key must be a modelserve setting with a valid value.
* ``text`` blocks (sample output) are not checked, unless marked ``output``.
* The Markdown itself must be sound: every block has one of these languages, and no table rows
  stray outside their table.

Every document's examples assume the README's ``make run`` is serving (issue 13: "after make
run"). So before a document's first runnable block the test runs the README's first block
(``make run``, a ``background`` block), unless the document's first runnable block is itself a
``background`` block (it starts its own server: README.md, quick_deploy.md, the digits
README). The first ``make run`` of a checkout trains the digits model (``make example``).

No fixed port is ever bound: each document gets free ports, and the ports the documents name
(make run's 8080-8082 and 7070-7071, the README's second server's 9080-9082 and 9070-9071) are
replaced by them in every command, URL and expected output; the ``MODELSERVE_*_ADDRESS`` and
``MODELSERVE_GRPC_*_PORT`` variables put ``make run`` and a flagless ``modelserve start`` on
them too. ``MODELSERVE_RUNTIME_DIR`` is private, so ``modelserve ps`` / ``stop`` in the
documents see only the test's own servers; snapshots are off (they would land in logs/).
Every server the document started is stopped at the end, whatever failed. A block must leave
the repository's tracked files as they were and add no file git would not ignore. The test
never reinstalls the virtualenv: ``make run`` would when it is older than pyproject.toml or
the Makefile, so the test asks for ``make venv`` first instead.

A block is marked with an HTML comment on the line(s) right before its fence (invisible on
GitHub); the whole vocabulary:

``<!-- docs-test: skip: REASON -->``
    not run (or not parsed); the reason is required: a GPU, a public host name, a 20-minute
    benchmark, ``make test`` itself.
``<!-- docs-test: background -->``
    a command that serves in the foreground (``make run``, ``modelserve serve``): started, and
    awaited until its output shows ``Model server started.`` and then its startup models'
    outcome (``Ready…`` / ``Not serving…``); it keeps serving until the document's end, and
    no further line of the block runs (as in a terminal the server holds: the README's
    ``make test`` after ``make run``).
``<!-- docs-test: fails -->``
    the block shows an error on purpose: it must exit non-zero (a curl answered 4xx); pair it
    with an ``output`` block saying which error.
``<!-- docs-test: output -->``
    on a ``text`` block right after a runnable block: what that block printed (a background
    block: its server's output so far). Each line must match a line of the output, in order;
    ``…`` matches any run of characters, and a line of ``…`` alone, like a blank line, stands
    for lines left out.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from docs_blocks import (
    PARSED,
    REPOSITORY,
    Block,
    Document,
    check_parsed,
    documents,
    missing_output,
    read_document,
    shown,
)
from docs_session import VENV, DocSession, Outcome

DOCUMENTS = documents()
STAMP = VENV / ".installed"


def readme_server() -> Block:
    """The README's first block (``make run``), which the other documents assume is serving."""
    first = read_document(REPOSITORY / "README.md").blocks[0]
    assert first.keyword == "background" and "make run" in first.text, first
    return first


@pytest.fixture(scope="module")
def fresh_virtualenv() -> None:
    """Fail at once, saying what to do, where ``make run`` would reinstall the virtualenv."""
    if not (VENV / "bin" / "python").is_file():
        pytest.fail(f"no virtualenv at {VENV}: run `make venv` first", pytrace=False)
    question = subprocess.run(
        ["make", "-q", str(STAMP.relative_to(REPOSITORY))], cwd=REPOSITORY, capture_output=True
    )
    if question.returncode != 0:
        pytest.fail(
            f"{VENV} is older than pyproject.toml or the Makefile, so the documents' `make run` "
            "would reinstall it under the running tests: run `make venv` first",
            pytrace=False,
        )


def _repository_state() -> tuple[dict[str, tuple[int, int]], set[str]] | None:
    """Each tracked file's (mtime, size), and the untracked files git does not ignore; None
    outside a git checkout."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "-t"],
            cwd=REPOSITORY,
            capture_output=True,
        )
    except FileNotFoundError:  # no git
        return None
    if listing.returncode != 0:
        return None
    tracked: dict[str, tuple[int, int]] = {}
    untracked: set[str] = set()
    for entry in listing.stdout.decode().split("\0"):
        if not entry:
            continue
        tag, _, name = entry.partition(" ")
        if tag == "?":
            untracked.add(name)
            continue
        try:
            status = (REPOSITORY / name).stat()
        except FileNotFoundError:
            continue  # deleted in the working tree
        tracked[name] = (status.st_mtime_ns, status.st_size)
    return tracked, untracked


def _changes(before: tuple | None, after: tuple | None) -> list[str]:
    if before is None or after is None:
        return []
    (tracked_before, untracked_before), (tracked_after, untracked_after) = before, after
    changed = [name for name, stat in tracked_after.items() if tracked_before.get(name) != stat]
    added = sorted(untracked_after - untracked_before)
    return [f"changed {name}" for name in changed] + [f"added {name}" for name in added]


def _failure(block: Block, why: str, outcome: Outcome | None = None, text: str = "") -> str:
    report = [f"{block.where()} ({block.language}): {why}", "--- block ---", text or block.text]
    if outcome is not None:
        report += ["--- output ---", outcome.output]
    return "\n".join(report)


def _verdict(block: Block, outcome: Outcome) -> str | None:
    """Why the block's outcome is wrong, or None."""
    if outcome.timed_out:
        return "did not finish in time"
    if block.keyword == "background":
        if outcome.exit_code is not None:
            return f"exited {outcome.exit_code} before its server was ready"
        return None
    if block.keyword == "fails":
        return "exited 0, but it shows an error" if outcome.exit_code == 0 else None
    return f"exited {outcome.exit_code}" if outcome.exit_code != 0 else None


def _run_blocks(document: Document, session: DocSession) -> None:
    runnable = [block for block in document.blocks if block.runnable]
    steps = list(document.blocks)
    if runnable[0].keyword != "background":
        steps.insert(0, readme_server())
    output = ""
    for block in steps:
        if block.keyword == "output":
            missing = missing_output(session.rewrite(block.text), output)
            if missing:
                pytest.fail(
                    _failure(block, "the block before printed no line like:\n" + "\n".join(missing))
                    + f"\n--- what it printed ---\n{output}",
                    pytrace=False,
                )
        if not block.runnable:
            continue
        before = _repository_state()
        if block.keyword == "background":
            outcome = session.start_background(block)
        else:
            outcome = session.run(block)
        text = session.rewrite(block.text)
        why = _verdict(block, outcome)
        if why is not None:
            pytest.fail(_failure(block, why, outcome, text), pytrace=False)
        changes = _changes(before, _repository_state())
        if changes:
            pytest.fail(
                _failure(block, "it changed the repository: " + ", ".join(changes), outcome, text),
                pytrace=False,
            )
        output = outcome.output


def summary(document: Document) -> str:
    """``README.md: 12 blocks: 8 run, 2 parsed, 2 skipped (GPU; ...)``."""
    blocks = document.blocks
    run = sum(block.runnable for block in blocks)
    parsed = sum(block.language in PARSED and block.keyword != "skip" for block in blocks)
    outputs = sum(block.keyword == "output" for block in blocks)
    skipped = [block for block in blocks if block.keyword == "skip"]
    samples = len(blocks) - run - parsed - outputs - len(skipped)
    reasons = "; ".join(f"{block.where()}: {block.marker.argument}" for block in skipped)
    return (
        f"{shown(document.path)}: {len(blocks)} blocks: {run} run, "
        f"{outputs} checked against the output before them, {parsed} parsed, "
        f"{samples} unchecked sample output, {len(skipped)} skipped"
        + (f" ({reasons})" if reasons else "")
    )


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "path", DOCUMENTS, ids=[str(path.relative_to(REPOSITORY)) for path in DOCUMENTS]
)
def test_document_examples_work(path: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Every block of the document does what the document says, in order."""
    document = read_document(path)
    assert not document.problems, "\n".join(document.problems)
    broken = [
        f"{block.where()} ({block.language}): {why}"
        for block in document.blocks
        if block.language in PARSED and block.keyword != "skip" and (why := check_parsed(block))
    ]
    assert not broken, "\n".join(broken)
    if any(block.runnable for block in document.blocks):
        request.getfixturevalue("fresh_virtualenv")
        session = DocSession(tmp_path)
        try:
            _run_blocks(document, session)
        finally:
            session.close()
    print(summary(document))

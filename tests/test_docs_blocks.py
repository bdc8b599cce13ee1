"""The parts of tests/test_docs_run.py that need no server: the Markdown's soundness, the
docs-test markers, parsed blocks, the matching of expected output, and the session's shell."""

from __future__ import annotations

from pathlib import Path

from docs_blocks import REPOSITORY, Block, check_parsed, missing_output, read_document
from docs_session import DocSession

# The end of docs/compatibility.md as it was: two rows after the table's closing paragraph,
# which GitHub shows as one run-on paragraph of pipes.
STRAY_ROWS = """| TorchServe | modelserve | why |
| --- | --- | --- |
| a | b | c |

Everything else behaves as in TorchServe 0.12.

| A request queued while no worker can take it waits | answered 503 | every request ends |
| Snapshots accumulate forever | the newest 20 are kept | |
"""


def _problems(tmp_path: Path, text: str) -> list[str]:
    document = tmp_path / "doc.md"
    document.write_text(text)
    return read_document(document).problems


def test_table_rows_outside_their_table_are_reported(tmp_path: Path) -> None:
    problems = _problems(tmp_path, STRAY_ROWS)
    assert problems == [f"{tmp_path / 'doc.md'}:7: table rows outside a table (after a blank line)"]


def test_a_sound_document_has_no_problems(tmp_path: Path) -> None:
    text = (
        "# t\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n\n"
        "<!-- docs-test: skip: needs an NVIDIA GPU -->\n```sh\nnvidia-smi\n```\n\n"
        "```sh\necho hi\n```\n\n<!-- docs-test: output -->\n```text\nhi\n```\n"
    )
    assert _problems(tmp_path, text) == []


def test_misused_markers_and_unknown_languages_are_reported(tmp_path: Path) -> None:
    lines = [
        "<!-- docs-test: skip -->",
        "```sh",
        "nvidia-smi",
        "```",
        "<!-- docs-test: bakground -->",
        "```sh",
        "make run",
        "```",
        "<!-- docs-test: background -->",
        "",
        "A paragraph between.",
        "",
        "```sh",
        "make run",
        "```",
        "```json",
        "{}",
        "```",
        "<!-- docs-test: output -->",
        "```text",
        "what a json block printed",
        "```",
        "```",
        "no language",
        "```",
    ]
    problems = "\n".join(_problems(tmp_path, "\n".join(lines) + "\n"))

    def at(line: str) -> str:
        return f":{lines.index(line) + 1}: "

    assert at("<!-- docs-test: skip -->") + "'skip' needs a reason" in problems
    assert at("<!-- docs-test: bakground -->") + "unknown docs-test keyword 'bakground'" in problems
    assert at("<!-- docs-test: background -->") + "a docs-test marker must come right" in problems
    assert ":20: 'output' marks a text block right after a run block" in problems
    assert ":23: block language '' is not one of" in problems


def test_markers_attach_to_the_block_after_them(tmp_path: Path) -> None:
    document = tmp_path / "doc.md"
    document.write_text("<!-- docs-test: skip: needs an NVIDIA GPU -->\n```sh\nnvidia-smi\n```\n")
    (block,) = read_document(document).blocks
    assert (block.keyword, block.marker.argument, block.runnable) == (
        "skip",
        "needs an NVIDIA GPU",
        False,
    )


def test_properties_blocks_must_hold_modelserve_settings_with_valid_values() -> None:
    def properties(text: str) -> str | None:
        return check_parsed(Block(Path("doc.md"), 1, "properties", text))

    assert properties("inference_address=https://0.0.0.0:8443\njob_queue_size=50\n") is None
    assert properties("inferance_address=http://127.0.0.1:8080\n") == (
        "not modelserve settings: inferance_address"
    )
    assert "job_queue_size" in properties("job_queue_size=0\n")


def test_json_and_yaml_blocks_are_parsed() -> None:
    assert check_parsed(Block(Path("doc.md"), 1, "json", '{"a": [1, 2]}')) is None
    assert check_parsed(Block(Path("doc.md"), 1, "json", '{"a": [1, 2}')) is not None
    assert check_parsed(Block(Path("doc.md"), 1, "yaml", "a: [1, 2")) is not None


def test_expected_output_matches_lines_in_order_with_elisions() -> None:
    output = "Model server started. (pid 42, log logs/x.log)\n  inference   http://h:1\nReady: m.\n"
    assert missing_output("Model server started. (pid …, log …)\n…\nReady: m.\n", output) == []
    # Runs of blanks count as one: a table's padding depends on its widest value.
    assert missing_output("inference http://h:1", output) == []
    assert missing_output("Ready: m.\nModel server started. …", output) == [
        "Model server started. …"
    ]
    assert missing_output("Ready: digits.", output) == ["Ready: digits."]


def test_a_session_carries_exports_and_directory_from_block_to_block(tmp_path: Path) -> None:
    session = DocSession(tmp_path)
    try:
        first = session.run(Block(Path("doc.md"), 1, "sh", "export GREETING=hi\ncd examples\n"))
        assert first.exit_code == 0, first.output
        second = session.run(Block(Path("doc.md"), 5, "sh", 'echo "$GREETING from $PWD"\n'))
        assert second.output == f"hi from {REPOSITORY / 'examples'}\n"
        failing = session.run(Block(Path("doc.md"), 9, "sh", "false\necho not reached\n"))
        assert (failing.exit_code, failing.output) == (1, "")
    finally:
        session.close()


def test_a_session_moves_documented_ports_to_free_ones(tmp_path: Path) -> None:
    session = DocSession(tmp_path)
    moved = session.rewrite("curl 127.0.0.1:8080/ping; grpc 7070; not 18080 or 80801")
    inference, grpc = session.ports[8080], session.ports[7070]
    assert moved == f"curl 127.0.0.1:{inference}/ping; grpc {grpc}; not 18080 or 80801"
    assert session.env["MODELSERVE_INFERENCE_ADDRESS"] == f"http://127.0.0.1:{inference}"

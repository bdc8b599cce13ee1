"""Wire messages survive a round trip with bodies kept as separate frames."""

from __future__ import annotations

from modelserve import wire


def test_batch_round_trip_keeps_bodies_out_of_the_header() -> None:
    requests = [
        wire.WireRequest(
            "r1", {"a": "b"}, [wire.RequestParameter("body", "image/png", b"\x00" * 64)]
        ),
        wire.WireRequest(
            "r2",
            {},
            [
                wire.RequestParameter("q", None, b"1"),
                wire.RequestParameter("body", "application/json", b"{}"),
            ],
        ),
    ]
    header_frame, *frames = wire.encode_batch(7, requests)
    assert len(header_frame) < 100 and frames[0] == b"\x00" * 64
    header = wire.decode_header(header_frame)
    assert header["k"] == wire.BATCH and header["id"] == 7
    assert wire.decode_batch(header, frames) == requests


def test_result_and_batch_error_round_trip() -> None:
    responses = [wire.WireResponse(201, "made", "text/plain", {"x": "y"}, b"ok")]
    header_frame, *frames = wire.encode_result(3, responses, wire.BatchTelemetry([], 1.0, 2.0))
    assert wire.decode_result(wire.decode_header(header_frame), frames) == responses
    error = wire.BatchError(507, "MemoryError", "out of memory")
    [header_frame] = wire.encode_batch_error(3, error, wire.BatchTelemetry([], 1.0, 2.0))
    assert wire.decode_result(wire.decode_header(header_frame), []) == error

"""The digits example served end to end: accuracy through the server equals in-process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from digits_example import DIGITS, train_and_archive
from support import RunningServer, start_server


@pytest.fixture(scope="module")
def digits_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    build = tmp_path_factory.mktemp("digits_build")
    store = tmp_path_factory.mktemp("digits_store")
    train_and_archive(build, store)
    server = start_server(tmp_path_factory.mktemp("digits_server"), store)
    response = httpx.post(
        server.management + "/models",
        params={"url": "digits.mar", "initial_workers": 1, "batch_size": 8, "max_batch_delay": 5},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    yield server, build
    server.stop()


def test_heldout_accuracy_through_the_server_equals_in_process(digits_server) -> None:
    server, build = digits_server
    in_process = json.loads((build / "metrics.json").read_text())["heldout_accuracy"]
    heldout = np.load(build / "heldout.npz")
    images, labels = heldout["images"], heldout["labels"]

    async def classify_all() -> list[int]:
        limit = asyncio.Semaphore(16)
        async with httpx.AsyncClient(base_url=server.inference, timeout=60) as client:

            async def classify(image: np.ndarray) -> int:
                async with limit:
                    response = await client.post("/predictions/digits", json=image.tolist())
                assert response.status_code == 200, response.text
                return response.json()["digit"]

            return await asyncio.gather(*(classify(image) for image in images))

    predictions = asyncio.run(classify_all())
    served = float(np.mean(np.array(predictions) == labels))
    assert served == pytest.approx(in_process, abs=1e-9)
    assert served >= 0.95


def test_png_sample_and_bad_input(digits_server) -> None:
    server, _ = digits_server
    png = (DIGITS / "sample.png").read_bytes()
    response = httpx.post(server.inference + "/predictions/digits", content=png, timeout=30)
    assert response.status_code == 200
    assert response.json()["digit"] == 7
    assert set(response.json()["probabilities"]) == {str(d) for d in range(10)}
    bad = httpx.post(server.inference + "/predictions/digits", json=[[1, 2], [3, 4]], timeout=30)
    assert bad.status_code == 400
    assert "8x8" in bad.json()["message"]

"""Model-store resolution of register/startup urls (TorchServe 0.12 §4.4, local sources)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelserve.archive import (
    ArchiveNotFoundError,
    RemoteUrlNotAllowedError,
    UnsafeArchiveError,
    UnsafeUrlError,
    default_model_name,
    list_model_store,
    resolve_archive,
)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    store.mkdir()
    (store / "resnet.mar").write_bytes(b"PK\x05\x06")
    (store / "unpacked").mkdir()
    return store


def test_plain_name_resolves_in_store(store: Path) -> None:
    assert resolve_archive("resnet.mar", store) == store / "resnet.mar"
    assert resolve_archive("unpacked", store) == store / "unpacked"


def test_relative_path_uses_its_base_name(store: Path) -> None:
    assert resolve_archive("some/dir/resnet.mar", store) == store / "resnet.mar"


def test_file_url_inside_store(store: Path) -> None:
    assert resolve_archive(f"file://{store}/resnet.mar", store) == store / "resnet.mar"
    assert resolve_archive(f"file://{store}/unpacked/", store) == store / "unpacked"
    assert resolve_archive("file://resnet.mar", store) == store / "resnet.mar"


def test_percent_encoded_file_url(store: Path) -> None:
    (store / "with space.mar").write_bytes(b"PK\x05\x06")
    url = f"file://{store}/with%20space.mar"
    assert resolve_archive(url, store) == store / "with space.mar"


@pytest.mark.parametrize(
    "url", ["../store/resnet.mar", "resnet.mar/..", "file:///x/%2e%2e/etc/passwd"]
)
def test_dotdot_is_refused(store: Path, url: str) -> None:
    with pytest.raises(UnsafeUrlError, match="Relative path is not allowed in url"):
        resolve_archive(url, store)


@pytest.mark.parametrize("url", ["", "   "])
def test_empty_url_is_refused(store: Path, url: str) -> None:
    with pytest.raises(UnsafeUrlError, match="empty"):
        resolve_archive(url, store)


def test_path_outside_store_is_refused(store: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.mar"
    outside.write_bytes(b"PK\x05\x06")
    for url in (str(outside), f"file://{outside}", str(store), f"file://{store}"):
        with pytest.raises(UnsafeUrlError, match="outside the model store") as caught:
            resolve_archive(url, store)
        assert isinstance(caught.value, UnsafeArchiveError)
        assert url in str(caught.value)


def test_file_url_without_absolute_path_uses_its_base_name(store: Path) -> None:
    assert resolve_archive(f"file://localhost{store}/resnet.mar", store) == store / "resnet.mar"
    assert resolve_archive("file://share/dir/resnet.mar", store) == store / "resnet.mar"


def test_missing_model(store: Path) -> None:
    with pytest.raises(ArchiveNotFoundError, match=re.escape("Model not found at: absent.mar")):
        resolve_archive("absent.mar", store)
    with pytest.raises(ArchiveNotFoundError, match="Model not found at"):
        resolve_archive(f"file://{store}/absent.mar", store)


def test_no_model_store(store: Path) -> None:
    with pytest.raises(ArchiveNotFoundError, match="Model store has not been configured"):
        resolve_archive("resnet.mar", None)


@pytest.mark.parametrize(
    "url", ["http://example.com/m.mar", "https://example.com/m.mar", "s3://bucket/m.mar"]
)
def test_remote_urls_are_not_enabled(store: Path, url: str) -> None:
    with pytest.raises(RemoteUrlNotAllowedError, match="not enabled") as caught:
        resolve_archive(url, store)
    assert url in str(caught.value)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("resnet-18.mar", "resnet_18"),
        ("/store/bert.tar.gz", "bert"),
        ("x/mnist.tgz", "mnist"),
        ("squeeze.model", "squeeze"),
        ("unpacked dir", "unpacked_dir"),
        ("v1.2", "v1"),
    ],
)
def test_default_model_name(path: str, name: str) -> None:
    assert default_model_name(path) == name


def test_list_model_store(store: Path) -> None:
    for name in ("a.tar.gz", "b.tgz", "c.model", "notes.txt", ".hidden.mar"):
        (store / name).write_bytes(b"")
    (store / ".cache").mkdir()
    assert [path.name for path in list_model_store(store)] == [
        "a.tar.gz",
        "b.tgz",
        "c.model",
        "resnet.mar",
        "unpacked",
    ]


def test_list_missing_model_store(tmp_path: Path) -> None:
    with pytest.raises(ArchiveNotFoundError, match="nowhere"):
        list_model_store(tmp_path / "nowhere")

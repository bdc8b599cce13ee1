"""The url policy: normalisation, unsafe spellings and allowed_urls matching (pure functions),
and how the model-store resolver applies it to file urls outside the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelserve.archive import RemoteUrlNotAllowedError, UnsafeUrlError, resolve_archive
from modelserve.archive.url_policy import (
    check_url_text,
    file_url,
    is_allowed,
    is_remote_url,
    normalize_remote_url,
    require_allowed,
    url_scheme,
)


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("HTTP://Example.COM/Models/X.mar", "http://example.com/Models/X.mar"),
        ("http://example.com:80/a.mar", "http://example.com/a.mar"),
        ("https://example.com:443/a.mar", "https://example.com/a.mar"),
        ("https://example.com:80/a.mar", "https://example.com:80/a.mar"),
        ("http://example.com:8080/a.mar", "http://example.com:8080/a.mar"),
        ("http://example.com", "http://example.com/"),
        ("https://bücher.example/m.mar", "https://xn--bcher-kva.example/m.mar"),
        ("https://BÜCHER.example/m.mar", "https://xn--bcher-kva.example/m.mar"),
        ("http://[0:0::1]:8080/m.mar", "http://[::1]:8080/m.mar"),
        ("http://127.0.0.1:8080/m.mar", "http://127.0.0.1:8080/m.mar"),
        ("http://h.example/a%20b.mar", "http://h.example/a b.mar"),
        ("http://h.example/m%2Emar", "http://h.example/m.mar"),
        ("http://h.example/a.mar#frag", "http://h.example/a.mar"),
        # Signed urls carry encoded "/" in the query: kept as given, not refused.
        (
            "https://s3.example/b/m.mar?X-Cred=AK%2F2024",
            "https://s3.example/b/m.mar?X-Cred=AK%2F2024",
        ),
    ],
)
def test_normalization(url: str, normalized: str) -> None:
    assert normalize_remote_url(url).text == normalized


def test_normalized_parts() -> None:
    remote = normalize_remote_url("HTTPS://Host.Example:8443/dir/a%20b%25c.mar?sig=x%2Fy")
    assert (remote.scheme, remote.host, remote.port) == ("https", "host.example", 8443)
    assert remote.origin == "https://host.example:8443"
    assert remote.path == "/dir/a b%c.mar"
    assert remote.file_name == "a b%c.mar"
    # What is sent means what was matched: the decoded path encoded once more.
    assert remote.request_url == "https://host.example:8443/dir/a%20b%25c.mar?sig=x%2Fy"
    assert remote.display == "https://host.example:8443/dir/a b%c.mar"
    assert normalize_remote_url("http://h.example/m.mar").port == 80


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://h.example/a/../b.mar", "Relative path is not allowed"),
        ("http://h.example/a/%2e%2e/b.mar", "Relative path is not allowed"),
        ("http://h.example/a/%2E%2e/b.mar", "Relative path is not allowed"),
        ("http://h.example/a/.%2e/b.mar", "Relative path is not allowed"),
        ("http://h.example/a/%252e%252e/b.mar", "Relative path is not allowed"),
        ("http://h.example/a%2f..%2fb.mar", "Relative path is not allowed"),
        ("http://h.example/m.mar?v=1..2", "Relative path is not allowed"),
        ("http://h.example/public%2fsecret.mar", "Percent-encoded '/'"),
        ("http://h.example/public%252Fsecret.mar", "Percent-encoded '/'"),
        ("http://h.example\\evil.example/a.mar", "Backslash"),
        ("http://h.example/a%5cb.mar", "Backslash"),
        ("http://h.example/a%255Cb.mar", "Backslash"),
        ("http://127.0.0.1@evil.example/m.mar", "User info"),
        ("http://user:secret@h.example/m.mar", "User info"),
        ("http://allowed.example%40evil.example@h/m.mar", "User info"),
        ("http://h.example/a\nb.mar", "Control characters"),
        ("http://h.example/a%00b.mar", "Control characters"),
        ("http://h.example/a%0d%0aX-Injected:1", "Control characters"),
        ("http://h.example/\u202erah.mar", "Control characters"),
        (" http://h.example/m.mar", "Leading or trailing whitespace"),
        ("http://h.example/m.mar\t", "Leading or trailing whitespace"),
        ("http://h.example/a b.mar", "Whitespace"),
        ("http://h.example/a\u00a0b.mar", "Whitespace"),
        ("ftp://h.example/m.mar", "Only http and https"),
        ("file:///etc/passwd", "Only http and https"),
        ("http://h.example:99999/m.mar", "Invalid host or port"),
        ("http://h.example:port/m.mar", "Invalid host or port"),
        ("http://h.example:0/m.mar", "Invalid host or port"),
        ("http://[::1/m.mar", "Invalid host or port"),
        ("http:///m.mar", "No host"),
        ("http://ev%2eil.example/m.mar", "Invalid host name"),
        ("http://a!b.example/m.mar", "Invalid host name"),
        ("http://127.1/m.mar", "Non-canonical IP address"),
        ("http://2130706433/m.mar", "Non-canonical IP address"),
        ("http://0x7f.0.0.1/m.mar", "Non-canonical IP address"),
        ("http://127.000.000.001/m.mar", "Non-canonical IP address"),
        ("http://h.example/%ff.mar", "Invalid percent-encoding"),
    ],
)
def test_unsafe_remote_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UnsafeUrlError, match=reason):
        normalize_remote_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "../outside.mar",
        "%2e%2e%2foutside.mar",
        "%252e%252e/outside.mar",
        "file:///store/%2e%2e/outside.mar",
        "file:///store/x%2F..%2F..%2Foutside.mar",
    ],
)
def test_local_dotdot_is_refused(url: str) -> None:
    with pytest.raises(UnsafeUrlError, match="Relative path is not allowed in url"):
        check_url_text(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("a\\b.mar", "Backslash"),
        ("a%5cb.mar", "Backslash"),
        ("x\x00.mar", "Control characters"),
        ("x%00.mar", "Control characters"),
        (" x.mar", "Leading or trailing whitespace"),
        ("file:///store/a%2fb.mar", "Percent-encoded '/'"),
    ],
)
def test_unsafe_local_spellings_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UnsafeUrlError, match=reason):
        check_url_text(url)


@pytest.mark.parametrize(
    "url", ["probe.mar", "with space.mar", "100%.mar", "file:///store/with%20space.mar", "a/b.mar"]
)
def test_ordinary_local_urls_pass(url: str) -> None:
    check_url_text(url)


@pytest.mark.parametrize(
    ("url", "scheme", "remote"),
    [
        ("HTTPS://h.example/m.mar", "https", True),
        ("http://h.example/m.mar", "http", True),
        ("file:///store/m.mar", "file", False),
        ("s3://bucket/m.mar", "s3", False),
        ("probe.mar", None, False),
        ("/abs/probe.mar", None, False),
    ],
)
def test_scheme(url: str, scheme: str | None, remote: bool) -> None:
    assert url_scheme(url) == scheme
    assert is_remote_url(url) is remote


@pytest.mark.parametrize(
    ("patterns", "normalized", "allowed"),
    [
        ([r"http://example\.com/.*"], "http://example.com/m.mar", True),
        ([r"HTTP://EXAMPLE\.COM/.*"], "http://example.com/m.mar", True),
        # The whole url must match: a pattern is no prefix.
        ([r"http://example\.com"], "http://example.com/m.mar", False),
        ([r"http://example\.com/"], "http://example.com/m.mar", False),
        ([r"http://example\.com/.*"], "http://example.com.evil.example/m.mar", False),
        ([r"https://a\.example/.*", r"http://example\.com/.*"], "http://example.com/m", True),
        ([], "http://example.com/m.mar", False),
    ],
)
def test_is_allowed(patterns: list[str], normalized: str, allowed: bool) -> None:
    assert is_allowed(normalized, patterns) is allowed


def test_patterns_see_the_normalized_url() -> None:
    remote = normalize_remote_url("HTTP://Example.COM:80/m%2Emar")
    assert is_allowed(remote.text, [r"http://example\.com/m\.mar"])


def test_require_allowed_uses_torchserve_wording() -> None:
    with pytest.raises(RemoteUrlNotAllowedError) as caught:
        require_allowed("HTTP://x.example/m.mar", "http://x.example/m.mar", [r"https://.*"])
    assert str(caught.value) == "Given URL HTTP://x.example/m.mar does not match any allowed URL(s)"
    require_allowed("HTTP://x.example/m.mar", "http://x.example/m.mar", [r"http://x\..*"])


def test_file_url_is_the_real_path(tmp_path: Path) -> None:
    real = tmp_path / "real.mar"
    real.write_bytes(b"")
    (tmp_path / "link.mar").symlink_to(real)
    assert file_url(tmp_path / "link.mar") == f"file://{real.resolve()}"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    store.mkdir()
    (store / "inside.mar").write_bytes(b"PK\x05\x06")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "outside.mar").write_bytes(b"PK\x05\x06")
    return store


def test_store_urls_need_no_pattern(store: Path) -> None:
    assert resolve_archive("inside.mar", store) == store / "inside.mar"
    assert resolve_archive(f"file://{store}/inside.mar", store) == store / "inside.mar"


def test_outside_store_only_when_a_pattern_matches(store: Path) -> None:
    outside = store.parent / "shared" / "outside.mar"
    for url in (f"file://{outside}", str(outside)):
        with pytest.raises(UnsafeUrlError, match="does not match any allowed URL"):
            resolve_archive(url, store)
        with pytest.raises(UnsafeUrlError, match="does not match any allowed URL"):
            resolve_archive(url, store, [r"file:///etc/.*"])
        pattern = f"file://{store.parent.resolve()}/shared/.*"
        assert resolve_archive(url, store, [pattern]) == outside.resolve()


def test_etc_passwd_is_refused_by_default(store: Path) -> None:
    with pytest.raises(UnsafeUrlError, match="does not match any allowed URL"):
        resolve_archive("file:///etc/passwd", store)


def test_outside_store_pattern_sees_the_real_path(store: Path) -> None:
    # A link in an allowed directory to a file elsewhere is judged by where it leads.
    allowed_dir = store.parent / "allowed"
    allowed_dir.mkdir()
    (allowed_dir / "link.mar").symlink_to(store.parent / "shared" / "outside.mar")
    pattern = f"file://{allowed_dir.resolve()}/.*"
    with pytest.raises(UnsafeUrlError, match="does not match any allowed URL"):
        resolve_archive(f"file://{allowed_dir}/link.mar", store, [pattern])

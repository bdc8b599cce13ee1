"""modelserve.archive reading and safe extraction: good archives, and hostile ones.

Every hostile case shows the error names the problem and that nothing was written
outside the target directory (the directory around it is listed before and after).
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import struct
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from modelserve.archive import (
    ArchiveError,
    ArchiveNotFoundError,
    ArchiveTooLargeError,
    CorruptArchiveError,
    InvalidManifestError,
    Manifest,
    MissingHandlerError,
    UnsafeArchiveError,
    extract_archive,
    read_manifest,
)

MANIFEST = {
    "createdOn": "01/02/2024 10:00:00",
    "runtime": "python",
    "model": {
        "modelName": "probe",
        "serializedFile": "weights.bin",
        "handler": "probe_handler.py",
        "modelVersion": "2.0",
    },
    "archiverVersion": "0.12.0",
}
GOOD_FILES = {
    "MAR-INF/MANIFEST.json": json.dumps(MANIFEST).encode(),
    "weights.bin": b"\x00\x01weights",
    "probe_handler.py": b"def handle(data, context):\n    return data\n",
    "assets/labels.txt": b"a\nb\n",
}


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def add_tar_file(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def make_tgz(path: Path, files: dict[str, bytes], top: str = "") -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            add_tar_file(archive, f"{top}{name}", data)
    return path


def listing(directory: Path) -> set[str]:
    return {str(path.relative_to(directory)) for path in directory.rglob("*")}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """The directory holding the target: escapes would land here or above."""
    directory = tmp_path / "work"
    directory.mkdir()
    return directory


def assert_contained(work: Path, act: Callable[[], object], error: type[Exception]) -> str:
    """Run ``act`` expecting ``error``; nothing may appear around the target, which is gone."""
    before = listing(work.parent)
    with pytest.raises(error) as caught:
        act()
    assert listing(work.parent) == before
    assert not (work / "target").exists()
    return str(caught.value)


# --- good archives -----------------------------------------------------------------------


def test_zip_is_read_and_extracted(work: Path) -> None:
    source = make_zip(work / "probe.mar", GOOD_FILES)
    manifest = read_manifest(source)
    assert (manifest.model_name, manifest.model_version) == ("probe", "2.0")
    assert manifest.handler == "probe_handler.py"
    assert manifest.serialized_file == "weights.bin"
    assert manifest.created_on == "01/02/2024 10:00:00"

    assert extract_archive(source, work / "target") == manifest
    for name, data in GOOD_FILES.items():
        assert (work / "target" / name).read_bytes() == data


def test_tgz_single_top_directory_is_stripped(work: Path) -> None:
    source = make_tgz(work / "probe.tar.gz", GOOD_FILES, top="probe/")
    assert read_manifest(source).model_name == "probe"
    extract_archive(source, work / "target")
    assert listing(work / "target") == listing_of(GOOD_FILES)


def listing_of(files: dict[str, bytes]) -> set[str]:
    names = set(files)
    for name in files:
        parts = name.split("/")
        names.update("/".join(parts[:index]) for index in range(1, len(parts)))
    return names


def test_format_is_detected_by_content_not_name(work: Path) -> None:
    source = make_tgz(work / "looks-like.mar", GOOD_FILES)
    assert extract_archive(source, work / "target").model_name == "probe"


def test_directory_with_manifest_is_copied(work: Path) -> None:
    model = work / "model"
    for name, data in GOOD_FILES.items():
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_bytes(data)
    (model / "link_to_labels").symlink_to("assets/labels.txt")
    manifest = extract_archive(model, work / "target")
    assert manifest.model_name == "probe"
    copied = work / "target" / "link_to_labels"
    assert copied.is_symlink() and copied.read_bytes() == b"a\nb\n"
    assert listing(model) == listing(work / "target")


def test_directory_without_manifest_has_empty_manifest(work: Path) -> None:
    model = work / "bare"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w")
    manifest = read_manifest(model)
    assert manifest == Manifest()
    assert (manifest.model_name, manifest.model_version, manifest.runtime) == (
        None,
        "1.0",
        "python",
    )
    named = extract_archive(model, work / "target", model_name="bare", handler="base_handler")
    assert (named.model_name, named.handler) == ("bare", "base_handler")


def test_directory_with_single_subdirectory_uses_it(work: Path) -> None:
    model = work / "sagemaker"
    for name, data in GOOD_FILES.items():
        (model / "inner" / name).parent.mkdir(parents=True, exist_ok=True)
        (model / "inner" / name).write_bytes(data)
    assert read_manifest(model).model_name == "probe"
    extract_archive(model, work / "target")
    assert (work / "target" / "MAR-INF" / "MANIFEST.json").is_file()


def test_manifest_defaults_and_overrides(work: Path) -> None:
    manifest = {"model": {"modelName": "m", "handler": "image_classifier"}}
    source = make_zip(work / "m.mar", {"MAR-INF/MANIFEST.json": json.dumps(manifest).encode()})
    read = read_manifest(source)
    assert (read.model_version, read.runtime, read.created_on) == ("1.0", "python", None)
    renamed = read_manifest(source, model_name="other")
    assert renamed.model_name == "other"
    assert renamed.to_dict()["model"]["modelName"] == "other"


def test_manifest_to_dict_keeps_unknown_keys() -> None:
    document = {"model": {"modelName": "m", "handler": "h", "extensions": {"x": 1}}, "extra": 1}
    manifest = Manifest.from_json(json.dumps(document).encode())
    assert manifest.to_dict() == {
        "model": {"modelName": "m", "handler": "h", "modelVersion": "1.0", "extensions": {"x": 1}},
        "extra": 1,
        "runtime": "python",
    }
    assert Manifest.from_json(document) == manifest


def test_handler_module_names_need_no_file(work: Path) -> None:
    for handler in ("image_classifier", "my_package.handler:handle"):
        manifest = {"model": {"modelName": "m", "handler": handler}}
        source = make_zip(work / "m.mar", {"MAR-INF/MANIFEST.json": json.dumps(manifest).encode()})
        assert read_manifest(source).handler == handler


def test_handler_with_function_is_found(work: Path) -> None:
    files = dict(GOOD_FILES)
    manifest = json.loads(files["MAR-INF/MANIFEST.json"])
    manifest["model"]["handler"] = "probe_handler:handle"
    files["MAR-INF/MANIFEST.json"] = json.dumps(manifest).encode()
    source = make_zip(work / "m.mar", files)
    assert extract_archive(source, work / "target").handler == "probe_handler:handle"


def test_tar_hard_link_to_earlier_file(work: Path) -> None:
    source = work / "linked.tar.gz"
    with tarfile.open(source, "w:gz") as archive:
        for name, data in GOOD_FILES.items():
            add_tar_file(archive, name, data)
        link = tarfile.TarInfo("weights_again.bin")
        link.type, link.linkname = tarfile.LNKTYPE, "weights.bin"
        archive.addfile(link)
    extract_archive(source, work / "target")
    assert (work / "target" / "weights_again.bin").read_bytes() == GOOD_FILES["weights.bin"]


def test_non_empty_target_is_refused_and_kept(work: Path) -> None:
    source = make_zip(work / "probe.mar", GOOD_FILES)
    (work / "target").mkdir()
    (work / "target" / "keep.txt").write_text("mine")
    with pytest.raises(ArchiveError, match="not an empty directory"):
        extract_archive(source, work / "target")
    assert (work / "target" / "keep.txt").read_text() == "mine"


def test_missing_source(work: Path) -> None:
    with pytest.raises(ArchiveNotFoundError, match=re.escape("nope.mar")):
        read_manifest(work / "nope.mar")


def test_imports_only_the_standard_library() -> None:
    code = (
        "import sys; before = set(sys.modules); import modelserve.archive; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(sorted(new - set(sys.stdlib_module_names) - {'modelserve'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# --- hostile archives ----------------------------------------------------------------------


def test_zip_entry_with_dotdot(work: Path) -> None:
    source = make_zip(work / "evil.mar", {**GOOD_FILES, "../evil.txt": b"gotcha"})
    message = assert_contained(
        work, lambda: extract_archive(source, work / "target"), UnsafeArchiveError
    )
    assert "'../evil.txt'" in message and ".." in message and str(source) in message
    assert not (work / "evil.txt").exists()


def test_zip_entry_with_backslash_dotdot(work: Path) -> None:
    source = make_zip(work / "evil.mar", {**GOOD_FILES, "sub\\..\\..\\evil.txt": b"gotcha"})
    assert_contained(work, lambda: extract_archive(source, work / "target"), UnsafeArchiveError)
    assert not (work / "evil.txt").exists()


def test_zip_entry_with_absolute_path(work: Path, tmp_path: Path) -> None:
    escape = tmp_path / "outside" / "evil"
    source = make_zip(work / "evil.mar", {**GOOD_FILES, str(escape): b"gotcha"})
    message = assert_contained(
        work, lambda: extract_archive(source, work / "target"), UnsafeArchiveError
    )
    assert "absolute path" in message and str(escape) in message
    assert not escape.exists() and not escape.parent.exists()


def test_tar_member_with_dotdot(work: Path) -> None:
    source = make_tgz(work / "evil.tar.gz", {**GOOD_FILES, "../evil.txt": b"gotcha"})
    message = assert_contained(
        work, lambda: extract_archive(source, work / "target"), UnsafeArchiveError
    )
    assert "'../evil.txt'" in message
    assert not (work / "evil.txt").exists()


def test_tar_member_with_absolute_path(work: Path, tmp_path: Path) -> None:
    escape = tmp_path / "outside" / "evil"
    source = make_tgz(work / "evil.tar.gz", {**GOOD_FILES, str(escape): b"gotcha"})
    message = assert_contained(
        work, lambda: extract_archive(source, work / "target"), UnsafeArchiveError
    )
    assert "absolute path" in message
    assert not escape.parent.exists()


@pytest.mark.parametrize("relative", [False, True], ids=["absolute-link", "relative-link"])
def test_tar_symlink_outside_and_member_written_through_it(
    work: Path, tmp_path: Path, relative: bool
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    source = work / "evil.tar.gz"
    with tarfile.open(source, "w:gz") as archive:
        for name, data in GOOD_FILES.items():
            add_tar_file(archive, name, data)
        link = tarfile.TarInfo("escape")
        link.type = tarfile.SYMTYPE
        link.linkname = "../../outside" if relative else str(outside)
        archive.addfile(link)
        add_tar_file(archive, "escape/evil.txt", b"gotcha")
    message = assert_contained(
        work, lambda: extract_archive(source, work / "target"), UnsafeArchiveError
    )
    assert "symlink 'escape'" in message
    assert list(outside.iterdir()) == []


def test_tar_symlink_chain_escaping_is_caught_on_disk(work: Path, tmp_path: Path) -> None:
    # each link alone looks inside; followed together they leave the target
    source = work / "chain.tar.gz"
    with tarfile.open(source, "w:gz") as archive:
        for name, data in GOOD_FILES.items():
            add_tar_file(archive, name, data)
        for name, target in (("d/up", ".."), ("d/up2", "up/..")):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, target
            archive.addfile(link)
    message = assert_contained(
        work, lambda: extract_archive(source, work / "target"), UnsafeArchiveError
    )
    assert "resolves outside" in message


def test_tar_symlink_made_through_an_escaping_symlink(work: Path) -> None:
    # "d/up2" resolves to the directory around the target; a link made under it would land there
    source = work / "through-link.tar.gz"
    with tarfile.open(source, "w:gz") as archive:
        for name, data in GOOD_FILES.items():
            add_tar_file(archive, name, data)
        for name, target in (("d/up", ".."), ("d/up2", "up/.."), ("d/up2/evil", "x")):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, target
            archive.addfile(link)
    message = assert_contained(
        work, lambda: extract_archive(source, work / "target"), UnsafeArchiveError
    )
    assert "'d/up2/evil'" in message and "under the symlink 'd/up2'" in message
    assert not os.path.lexists(work / "evil")


def test_tar_member_over_inside_symlink_is_refused(work: Path) -> None:
    source = work / "through.tar.gz"
    with tarfile.open(source, "w:gz") as archive:
        for name, data in GOOD_FILES.items():
            add_tar_file(archive, name, data)
        link = tarfile.TarInfo("alias")
        link.type, link.linkname = tarfile.SYMTYPE, "assets"
        archive.addfile(link)
        add_tar_file(archive, "alias/evil.txt", b"gotcha")
    message = assert_contained(
        work, lambda: extract_archive(source, work / "target"), UnsafeArchiveError
    )
    assert "collides" in message


def test_tar_device_file(work: Path) -> None:
    source = work / "device.tar.gz"
    with tarfile.open(source, "w:gz") as archive:
        for name, data in GOOD_FILES.items():
            add_tar_file(archive, name, data)
        device = tarfile.TarInfo("null")
        device.type, device.devmajor, device.devminor = tarfile.CHRTYPE, 1, 3
        archive.addfile(device)
    message = assert_contained(
        work, lambda: extract_archive(source, work / "target"), UnsafeArchiveError
    )
    assert "'null'" in message and "device" in message


def test_tar_hard_link_outside(work: Path) -> None:
    source = work / "hardlink.tar.gz"
    with tarfile.open(source, "w:gz") as archive:
        for name, data in GOOD_FILES.items():
            add_tar_file(archive, name, data)
        link = tarfile.TarInfo("passwd")
        link.type, link.linkname = tarfile.LNKTYPE, "/etc/passwd"
        archive.addfile(link)
    message = assert_contained(
        work, lambda: extract_archive(source, work / "target"), UnsafeArchiveError
    )
    assert "hard link 'passwd'" in message and "/etc/passwd" in message


def test_zip_symlink_entry_pointing_outside(work: Path, tmp_path: Path) -> None:
    source = work / "link.mar"
    make_zip(source, GOOD_FILES)
    with zipfile.ZipFile(source, "a") as archive:
        info = zipfile.ZipInfo("assets/escape")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, str(tmp_path))
    message = assert_contained(
        work, lambda: extract_archive(source, work / "target"), UnsafeArchiveError
    )
    assert "symlink 'assets/escape'" in message


def test_directory_symlink_escaping(work: Path, tmp_path: Path) -> None:
    model = work / "model"
    model.mkdir()
    (model / "MAR-INF").mkdir()
    (model / "MAR-INF" / "MANIFEST.json").write_bytes(GOOD_FILES["MAR-INF/MANIFEST.json"])
    (model / "probe_handler.py").write_bytes(GOOD_FILES["probe_handler.py"])
    (model / "secrets").symlink_to(tmp_path)
    message = assert_contained(
        work, lambda: extract_archive(model, work / "target"), UnsafeArchiveError
    )
    assert "symlink 'secrets'" in message and "outside" in message


def test_zip_bomb_refused_from_headers(work: Path) -> None:
    source = make_zip(work / "bomb.mar", {**GOOD_FILES, "zeros.bin": bytes(2 * 1024 * 1024)})
    assert source.stat().st_size < 64 * 1024
    message = assert_contained(
        work,
        lambda: extract_archive(source, work / "target", max_uncompressed_bytes=1024 * 1024),
        ArchiveTooLargeError,
    )
    assert str(source) in message and "1048576" in message


def test_tar_total_enforced_while_streaming(work: Path) -> None:
    chunk = bytes(600 * 1024)
    source = make_tgz(work / "big.tar.gz", {**GOOD_FILES, "a.bin": chunk, "b.bin": chunk})
    message = assert_contained(
        work,
        lambda: extract_archive(source, work / "target", max_uncompressed_bytes=1024 * 1024),
        ArchiveTooLargeError,
    )
    assert "'b.bin'" in message


def test_zip_header_lying_about_size(work: Path) -> None:
    """Headers claim 100 bytes; the data inflates to 1 MiB. Reading stops at the claimed
    size, so the lie surfaces as damage of that entry, and nothing stays behind."""
    source = make_zip(work / "liar.mar", {**GOOD_FILES, "zeros.bin": bytes(1024 * 1024)})
    patch_zip_sizes(source, "zeros.bin", 100)
    assert zipfile.ZipFile(source).getinfo("zeros.bin").file_size == 100
    message = assert_contained(
        work,
        lambda: extract_archive(source, work / "target", max_uncompressed_bytes=64 * 1024),
        CorruptArchiveError,
    )
    assert "'zeros.bin'" in message and "header" in message


def patch_zip_sizes(path: Path, name: str, size: int) -> None:
    """Overwrite the uncompressed size of ``name`` in its local and central headers."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    local = data.find(b"PK\x03\x04")
    while local != -1:
        name_length = struct.unpack_from("<H", data, local + 26)[0]
        if data[local + 30 : local + 30 + name_length] == encoded:
            struct.pack_into("<I", data, local + 22, size)
            break
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_length = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46 : central + 46 + name_length] == encoded:
            struct.pack_into("<I", data, central + 24, size)
            break
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))


def test_zip_without_manifest(work: Path) -> None:
    files = {name: data for name, data in GOOD_FILES.items() if not name.startswith("MAR-INF")}
    source = make_zip(work / "bare.mar", files)
    with pytest.raises(InvalidManifestError, match=re.escape("has no MAR-INF/MANIFEST.json")):
        read_manifest(source)
    message = assert_contained(
        work, lambda: extract_archive(source, work / "target"), InvalidManifestError
    )
    assert str(source) in message


def test_malformed_manifest_json(work: Path) -> None:
    source = make_zip(work / "bad.mar", {**GOOD_FILES, "MAR-INF/MANIFEST.json": b"{not json"})
    message = assert_contained(
        work, lambda: extract_archive(source, work / "target"), InvalidManifestError
    )
    assert "not valid JSON" in message and "MAR-INF/MANIFEST.json" in message
    assert str(source) in message


def test_manifest_missing_model_name(work: Path) -> None:
    manifest = {"runtime": "python", "model": {"handler": "probe_handler.py"}}
    source = make_zip(
        work / "noname.mar", {**GOOD_FILES, "MAR-INF/MANIFEST.json": json.dumps(manifest).encode()}
    )
    message = assert_contained(
        work, lambda: extract_archive(source, work / "target"), InvalidManifestError
    )
    assert "Model name is not defined" in message and str(source) in message
    # the register API's model_name fills the gap, as in TorchServe
    assert read_manifest(source, model_name="given").model_name == "given"


def test_manifest_with_bad_runtime(work: Path) -> None:
    manifest = {**MANIFEST, "runtime": "ruby"}
    source = make_zip(
        work / "ruby.mar", {**GOOD_FILES, "MAR-INF/MANIFEST.json": json.dumps(manifest).encode()}
    )
    with pytest.raises(InvalidManifestError, match="Invalid RuntimeType value: ruby"):
        read_manifest(source)


def test_handler_file_named_but_absent(work: Path) -> None:
    files = {name: data for name, data in GOOD_FILES.items() if name != "probe_handler.py"}
    source = make_zip(work / "nohandler.mar", files)
    with pytest.raises(MissingHandlerError, match=re.escape("'probe_handler.py'")):
        read_manifest(source)
    message = assert_contained(
        work, lambda: extract_archive(source, work / "target"), MissingHandlerError
    )
    assert str(source) in message


@pytest.mark.parametrize(
    "content",
    [b"just some text, not an archive", b"PK\x03\x04garbage that is no zip", b"\x1f\x8bbroken"],
    ids=["neither", "zip-magic", "gzip-magic"],
)
def test_corrupt_file(work: Path, content: bytes) -> None:
    source = work / "corrupt.mar"
    source.write_bytes(content)
    with pytest.raises(CorruptArchiveError, match=re.escape("corrupt.mar")):
        read_manifest(source)
    assert_contained(work, lambda: extract_archive(source, work / "target"), CorruptArchiveError)


def test_truncated_tgz(work: Path) -> None:
    source = make_tgz(work / "cut.tar.gz", {**GOOD_FILES, "noise.bin": os.urandom(256 * 1024)})
    source.write_bytes(source.read_bytes()[: 128 * 1024])
    message = assert_contained(
        work, lambda: extract_archive(source, work / "target"), CorruptArchiveError
    )
    assert str(source) in message

"""The backup archive: one ``.tar.gz`` with a ``manifest.json`` that holds a SHA-256 per file.

Writing streams each file into the archive while hashing the bytes written, so the manifest
describes exactly what the archive holds. The archive is written to a temporary file beside
its destination (mode 0600: it holds password and token hashes) and renamed into place, so a
backup that fails never leaves a partial archive under the final name.

Reading never extracts with ``tarfile``'s own helpers: every member must be a regular file with
a safe name, it is copied into a private staging folder while being hashed, and only when every
hash and size matches the manifest is the archive accepted. Nothing here unpickles anything.
This module knows nothing of Flask.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

FORMAT = "curate-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

#: Top-level folders of an archive; anything else in it is refused.
SECTIONS = ("database", "models", "covers", "uploads")

#: One path component: no separators, no leading dot (so no ``..`` and no hidden files).
SAFE_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_DEPTH = 3  # models/<kind>/<version>.joblib

CHUNK = 1024 * 1024


class ArchiveError(Exception):
    """The archive cannot be written or is refused; the message says why for the operator."""


def sha256_file(path: Path) -> str:
    """Return the SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def safe_member_name(name: str) -> bool:
    """True for ``manifest.json`` and ``<section>/<safe parts>``; false for anything that could
    leave the staging folder (absolute paths, ``..``, hidden files) or is not ours."""
    if name == MANIFEST:
        return True
    parts = name.split("/")
    return (
        2 <= len(parts) <= MAX_DEPTH
        and parts[0] in SECTIONS
        and all(SAFE_PART.fullmatch(part) for part in parts[1:])
    )


class _HashingReader:
    """Wraps a binary file so that every byte ``tarfile`` reads is also hashed and counted."""

    def __init__(self, handle: BinaryIO):
        self._handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        """Read like the wrapped file does, hashing what was read."""
        data = self._handle.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data


def write_archive(output: Path, files: dict[str, Path], manifest: dict) -> dict:
    """Write ``files`` (member name -> source path) and the manifest to ``output`` atomically.

    Returns the manifest as written, with ``files`` filled in (sha256 and size of each member).
    Sources must not change while they are written (artefacts and covers are write-once; the
    database is a snapshot made for this backup).
    """
    for name in files:
        if not safe_member_name(name):
            raise ArchiveError(f"refusing to archive an unsafe member name {name!r}")
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar:
                entries = {name: _add_file(tar, name, path) for name, path in files.items()}
                written = {**manifest, "files": entries}
                _add_bytes(tar, MANIFEST, json.dumps(written, indent=2, sort_keys=True).encode())
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp_name, output)  # mkstemp made it 0600, and the mode survives the rename
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return written


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(datetime.datetime.now(datetime.UTC).timestamp())
    return info


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> dict:
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        reader = _HashingReader(handle)
        tar.addfile(_member(name, size), reader)
    if reader.size != size:
        raise ArchiveError(f"{path} changed size while it was archived")
    return {"sha256": reader.digest.hexdigest(), "size": size}


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_member(name, len(data)), io.BytesIO(data))


@dataclass(frozen=True)
class VerifiedArchive:
    """An archive whose every member matched the manifest, unpacked into ``staging``."""

    source: Path
    manifest: dict
    staging: Path

    def path(self, name: str) -> Path:
        """Where the verified copy of member ``name`` lies."""
        return self.staging / PurePosixPath(name)

    def names(self, section: str) -> list[str]:
        """The member names under ``section/``, sorted."""
        return sorted(name for name in self.manifest["files"] if name.startswith(f"{section}/"))


def unpack_verified(source: Path, staging: Path) -> VerifiedArchive:
    """Copy every member of ``source`` into ``staging`` and check it against the manifest.

    Raises ArchiveError, naming the problem, for a file that is not a gzip tar, a truncated or
    damaged archive, a member with an unsafe name or type, a missing manifest, and any member
    whose SHA-256 or size differs from the manifest or that the manifest does not list.
    """
    found = _unpack(source, staging)
    manifest = _read_manifest(source, staging, found)
    listed = manifest["files"]
    missing = sorted(listed.keys() - found.keys())
    if missing:
        raise ArchiveError(f"{source} is missing {', '.join(missing)}, which its manifest "
                           "lists (the archive was cut short or altered)")
    unlisted = sorted(found.keys() - listed.keys() - {MANIFEST})
    if unlisted:
        raise ArchiveError(f"{source} holds {', '.join(unlisted)}, which its manifest does "
                           "not list")
    altered = sorted(name for name, entry in listed.items()
                     if found[name] != (entry.get("sha256"), entry.get("size")))
    if altered:
        raise ArchiveError(f"{source}: {', '.join(altered)} does not match its SHA-256 in the "
                           "manifest (the archive was altered or damaged)")
    return VerifiedArchive(source=source, manifest=manifest, staging=staging)


def _unpack(source: Path, staging: Path) -> dict[str, tuple[str, int]]:
    """Stream members into ``staging``; return name -> (sha256, size) of what was copied."""
    found: dict[str, tuple[str, int]] = {}
    try:
        with tarfile.open(source, mode="r:gz") as tar:
            for member in tar:
                found[member.name] = _copy_member(tar, member, staging, found, source)
            # Read to the end, so gzip checks its CRC and length: a copy cut short after the
            # last member is refused too.
            while tar.fileobj.read(CHUNK):
                pass
    except FileNotFoundError:
        raise ArchiveError(f"{source} does not exist") from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ArchiveError(f"{source} is truncated or damaged, or is not a Curate backup "
                           f"({error})") from error
    return found


def _copy_member(tar, member, staging: Path, found: dict, source: Path) -> tuple[str, int]:
    if not safe_member_name(member.name):
        raise ArchiveError(f"{source} holds a member with an unsafe or unknown name: "
                           f"{member.name!r}")
    if not member.isreg():
        raise ArchiveError(f"{source}: {member.name} is not a regular file")
    if member.name in found:
        raise ArchiveError(f"{source} holds {member.name} twice")
    target = staging / PurePosixPath(member.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with tar.extractfile(member) as data, open(target, "xb") as out:
        for chunk in iter(lambda: data.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def _read_manifest(source: Path, staging: Path, found: dict) -> dict:
    if MANIFEST not in found:
        raise ArchiveError(f"{source} has no {MANIFEST}: it is not a Curate backup, "
                           "or it was cut short")
    try:
        manifest = json.loads((staging / MANIFEST).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArchiveError(f"{source}: {MANIFEST} is unreadable ({error})") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(f"{source} is not a Curate backup ({MANIFEST} has no "
                           f"'format': '{FORMAT}')")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArchiveError(f"{source} uses backup format {manifest.get('format_version')!r}; "
                           f"this Curate reads format {FORMAT_VERSION}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(e, dict) for e in files.values()):
        raise ArchiveError(f"{source}: {MANIFEST} has no valid 'files' table")
    return manifest


def install_file(source: Path, target: Path, root: Path) -> bool:
    """Copy a verified file to ``target`` (inside ``root``) atomically: temp file + rename.

    Returns False, writing nothing, when ``target`` already holds the same bytes. Refuses a
    target that resolves outside ``root`` (a symlinked folder pointing elsewhere).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.parent.resolve().is_relative_to(root.resolve()):
        raise ArchiveError(f"{target} resolves outside {root}; refusing to write there")
    if target.is_file() and sha256_file(target) == sha256_file(source):
        return False
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as data:
            shutil.copyfileobj(data, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp_name, 0o644)  # readable, never executable, like the files the app writes
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return True

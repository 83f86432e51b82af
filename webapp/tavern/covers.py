"""Game covers: uploaded images, checked by their bytes, stored under generated names.

A cover is accepted only when its first bytes are those of a PNG, JPEG or WebP image (the
file's name and the browser's content type are ignored: both are the uploader's claims). It is
written under ``<instance>/covers/`` as ``<random hex>.<type>``, never under the uploader's
name, without execute permission, and served with its own image type and ``nosniff`` so a
browser never reinterprets it. Nothing uploaded is ever run or parsed further.

A cover that is replaced, removed, or whose game is deleted moves to ``covers/trash/``, where an
Undo can take it back; ``prune_trash`` removes what has been there longer than the grace period.
Only files the app itself moved there are ever deleted, so a covers folder shared by several
databases (tests, a second site) never loses another's files.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

MAX_COVER_BYTES = 2 * 1024 * 1024
#: A discarded cover stays in the trash this long, so an Undo can bring it back.
TRASH_GRACE_SECONDS = 3600
COVER_NAME_RE = re.compile(r"[0-9a-f]{32}\.(?:png|jpg|webp)", re.ASCII)


@dataclass(frozen=True)
class ImageType:
    """An accepted image type: the extension the app gives it and the type it is served as."""

    extension: str
    mimetype: str


PNG = ImageType("png", "image/png")
JPEG = ImageType("jpg", "image/jpeg")
WEBP = ImageType("webp", "image/webp")
MIMETYPES = {kind.extension: kind.mimetype for kind in (PNG, JPEG, WEBP)}
ACCEPTED = "PNG, JPEG or WebP"


def detect_image_type(head: bytes) -> ImageType | None:
    """The image type that ``head`` (a file's first 12 bytes or more) starts with, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    return None


def cover_dir() -> Path:
    """Where covers live: ``COVER_FOLDER`` if set, else ``<instance>/covers``; created on first use.

    Several hosts share covers through one folder on a shared volume (docs/deploy.md).
    """
    folder = Path(current_app.config.get("COVER_FOLDER") or Path(current_app.instance_path)
                  / "covers")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def store_cover(data: bytes) -> str:
    """Write ``data`` (an image ``detect_image_type`` accepts) and return its generated name.

    Written to a temporary file in the same folder, then renamed into place, so a reader never
    sees half a file. Raises ValueError for anything that is not an accepted image.
    """
    kind = detect_image_type(data[:16])
    if kind is None:
        raise ValueError(f"The file is not a {ACCEPTED} image.")
    folder = cover_dir()
    name = f"{uuid.uuid4().hex}.{kind.extension}"
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)  # readable, never executable
        os.replace(temporary, folder / name)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return name


def cover_file(name: str) -> tuple[Path, str] | None:
    """The path and image type of the stored cover ``name``, or None if there is no such file.

    Only names the app generates are looked up, so a request can never point outside the
    covers folder.
    """
    if not COVER_NAME_RE.fullmatch(name):
        return None
    path = cover_dir() / name
    if not path.is_file():
        return None
    return path, MIMETYPES[name.rsplit(".", 1)[1]]


def trash_dir() -> Path:
    """Where discarded covers wait for the grace period (inside the covers folder)."""
    folder = cover_dir() / "trash"
    folder.mkdir(exist_ok=True)
    return folder


def discard(name: str | None) -> None:
    """Move the cover ``name`` to the trash (a missing file is already gone: nothing to do)."""
    if not name or not COVER_NAME_RE.fullmatch(name):
        return
    try:
        os.replace(cover_dir() / name, trash_dir() / name)
    except FileNotFoundError:
        return
    os.utime(trash_dir() / name)  # the grace period starts now, not at the upload


def recover(name: str) -> bool:
    """Take the cover ``name`` back from the trash; False when it is not there (pruned, or
    never discarded: a live cover cannot be claimed by a second game)."""
    if not COVER_NAME_RE.fullmatch(name):
        return False
    try:
        os.replace(trash_dir() / name, cover_dir() / name)
    except FileNotFoundError:
        return False
    return True


def in_trash(name: str) -> bool:
    """True when ``name`` is a discarded cover that can still be recovered."""
    return bool(COVER_NAME_RE.fullmatch(name)) and (trash_dir() / name).is_file()


def prune_trash(grace_seconds: float = TRASH_GRACE_SECONDS) -> int:
    """Delete covers discarded more than ``grace_seconds`` ago, and temporary files abandoned
    that long; returns how many files were removed."""
    removed = 0
    cutoff = time.time() - grace_seconds
    candidates = [*trash_dir().iterdir(), *cover_dir().glob(".upload-*")]
    for path in candidates:
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # another worker removed it first
    return removed

"""Game covers: type checked by the file's bytes, size limit, generated names, safe serving."""

from __future__ import annotations

import io
import os
import re
import time
from decimal import Decimal
from pathlib import Path

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from webapp.extensions import db
from webapp.tavern import covers, service
from webapp.tavern.models import Game

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 40


@pytest.fixture(autouse=True)
def instance(app, tmp_path, monkeypatch) -> Path:
    """Covers go to a temporary instance folder, never the developer's own."""
    folder = tmp_path / "instance"
    monkeypatch.setattr(app, "instance_path", str(folder))
    return folder


@pytest.fixture
def game_id(app) -> int:
    with app.app_context():
        return service.save_game(Game(), "Tetris", "Gameboy", Decimal("2.99"), []).id


def upload(client, game_id: int, content: bytes, filename: str = "cover.png", **kwargs):
    """POST a cover; the body is encoded in memory (the test client would spool big ones to
    a temporary file it never closes, a ResourceWarning)."""
    boundary, body = encode_multipart({"cover": FileStorage(io.BytesIO(content), filename)})
    return client.post(f"/tavern/games/{game_id}/cover", data=body,
                       content_type=f"multipart/form-data; boundary={boundary}", **kwargs)


def cover_name(app, game_id: int) -> str | None:
    with app.app_context():
        return db.session.get(Game, game_id).cover_filename


@pytest.mark.parametrize(("content", "filename", "extension", "mimetype"), [
    (PNG, "cover.png", "png", "image/png"),
    (JPEG, "photo.jpeg", "jpg", "image/jpeg"),
    (WEBP, "cover.webp", "webp", "image/webp"),
    (JPEG, "misnamed.png", "jpg", "image/jpeg"),  # the bytes decide, not the name
    (PNG, "../../etc/passwd", "png", "image/png"),
])
def test_an_image_is_stored_under_a_generated_name_and_served_safely(
        app, client, htmx_client, auth, instance, game_id, content, filename, extension, mimetype):
    auth.login("staff")
    response = upload(htmx_client, game_id, content, filename)
    assert response.status_code == 200
    name = cover_name(app, game_id)
    assert re.fullmatch(rf"[0-9a-f]{{32}}\.{extension}", name)
    assert f'src="/tavern/covers/{name}"'.encode() in response.data
    assert b'alt="Cover of Tetris"' in response.data
    assert (instance / "covers" / name).read_bytes() == content
    assert not os.access(instance / "covers" / name, os.X_OK)
    served = client.get(f"/tavern/covers/{name}")
    assert served.status_code == 200 and served.data == content
    assert served.mimetype == mimetype
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert "private" in served.headers["Cache-Control"]
    served.close()


@pytest.mark.parametrize(("content", "filename", "message"), [
    (b"GIF89a" + b"\x00" * 40, "cover.gif", b"Only PNG, JPEG or WebP images"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "cover.png",
     b"Only PNG, JPEG or WebP images"),
    (b"<html><script>alert(1)</script></html>", "cover.jpg", b"Only PNG, JPEG or WebP images"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "cover.webp", b"Only PNG, JPEG or WebP images"),
    (b"", "cover.png", b"Only PNG, JPEG or WebP images"),
    (PNG + b"\x00" * covers.MAX_COVER_BYTES, "big.png", b"The image is larger than 2 MB."),
])
def test_other_files_are_refused_in_the_row_with_422(app, htmx_client, auth, instance, game_id,
                                                     content, filename, message):
    auth.login("host")
    response = upload(htmx_client, game_id, content, filename)
    assert response.status_code == 422
    assert message in response.data
    assert f'<tr id="game-{game_id}" class="game-row editing"'.encode() in response.data
    assert cover_name(app, game_id) is None
    assert not list((instance / "covers").glob("*"))


def test_no_file_chosen_is_422(htmx_client, auth, game_id):
    auth.login("host")
    response = htmx_client.post(f"/tavern/games/{game_id}/cover", data={})
    assert response.status_code == 422 and b"Choose an image." in response.data


def test_a_cover_exactly_at_the_limit_is_accepted(app, htmx_client, auth, game_id):
    auth.login("host")
    content = PNG + b"\x00" * (covers.MAX_COVER_BYTES - len(PNG))
    assert upload(htmx_client, game_id, content).status_code == 200


def test_without_javascript_an_upload_redirects_and_an_error_shows_the_page(client, auth,
                                                                            game_id):
    auth.login("staff")
    response = upload(client, game_id, PNG)
    assert response.status_code == 303 and response.headers["Location"] == "/tavern/games"
    response = upload(client, game_id, b"not an image", "x.png")
    assert response.status_code == 422 and b"<html" in response.data
    assert b"Only PNG, JPEG or WebP images" in response.data


def test_replacing_and_removing_a_cover(app, client, htmx_client, auth, instance, game_id):
    auth.login("staff")
    upload(htmx_client, game_id, PNG)
    first = cover_name(app, game_id)
    upload(htmx_client, game_id, JPEG, "new.jpg")
    second = cover_name(app, game_id)
    assert second != first and second.endswith(".jpg")
    # The replaced file is no longer served; it waits in the trash for the grace period.
    assert client.get(f"/tavern/covers/{first}").status_code == 404
    assert (instance / "covers" / "trash" / first).exists()
    assert not (instance / "covers" / first).exists()
    response = htmx_client.post(f"/tavern/games/{game_id}/cover/delete")
    assert response.status_code == 200 and b"no cover" in response.data
    assert cover_name(app, game_id) is None
    assert client.get(f"/tavern/covers/{second}").status_code == 404


@pytest.mark.parametrize("name", ["../secret_key", "x.png", "0" * 32 + ".gif",
                                  "0" * 32 + ".png", "%2e%2e%2fsecret_key"])
def test_only_covers_in_use_are_served(client, auth, name):
    auth.login("host")
    response = client.get(f"/tavern/covers/{name}")
    assert response.status_code == 404


def test_only_discarded_covers_are_pruned_after_the_grace_period(app, instance, game_id):
    with app.app_context():
        used, recent, old = (covers.store_cover(PNG) for _ in range(3))
        service.set_cover(db.session.get(Game, game_id), used)
        covers.discard(recent)
        covers.discard(old)
        folder = covers.cover_dir()
        # Another database's live cover in a shared folder: never the app's to delete.
        stranger = covers.store_cover(JPEG)
        long_ago = time.time() - covers.TRASH_GRACE_SECONDS - 60
        for path in (folder / used, folder / "trash" / old, folder / stranger):
            os.utime(path, (long_ago, long_ago))
        assert covers.prune_trash() == 1
        assert sorted(path.name for path in folder.glob("*.*")) == sorted([used, stranger])
        assert [path.name for path in (folder / "trash").iterdir()] == [recent]
        assert covers.recover(recent) and not covers.recover(old)


def test_delete_and_undo_keeps_the_cover(app, client, htmx_client, auth, instance, game_id):
    auth.login("staff")
    upload(htmx_client, game_id, PNG)
    name = cover_name(app, game_id)
    deleted = htmx_client.post(f"/tavern/games/{game_id}/delete").data.decode()
    assert f'name="cover_filename" value="{name}"' in deleted
    assert client.get(f"/tavern/covers/{name}").status_code == 404
    assert (instance / "covers" / "trash" / name).exists()
    restored = htmx_client.post(f"/tavern/games/{game_id}/restore", data={
        "name": "Tetris", "console": "Gameboy", "price_per_hour": "2.99",
        "cover_filename": name})
    assert restored.status_code == 200 and f"/tavern/covers/{name}".encode() in restored.data
    served = client.get(f"/tavern/covers/{name}")
    assert served.status_code == 200
    served.close()


@pytest.mark.parametrize("claimed", ["../../secret_key", "another game's live cover"])
def test_an_undo_can_only_take_back_its_own_discarded_cover(app, client, htmx_client, auth,
                                                            game_id, claimed):
    auth.login("staff")
    with app.app_context():
        other = service.save_game(Game(), "Pong", None, Decimal("1"), [])
        service.set_cover(other, covers.store_cover(PNG))
        live = other.cover_filename
    htmx_client.post(f"/tavern/games/{game_id}/delete")
    response = htmx_client.post(f"/tavern/games/{game_id}/restore", data={
        "name": "Tetris", "price_per_hour": "2.99",
        "cover_filename": live if claimed.startswith("another") else claimed})
    assert response.status_code == 200 and b"no cover" in response.data
    with app.app_context():
        assert db.session.scalar(service.games_query("Tetris")).cover_filename is None
    served = client.get(f"/tavern/covers/{live}")  # Pong keeps its cover
    assert served.status_code == 200
    served.close()


def test_covers_go_to_the_configured_shared_folder(app, tmp_path, monkeypatch):
    shared = tmp_path / "shared-covers"
    monkeypatch.setitem(app.config, "COVER_FOLDER", str(shared))
    with app.app_context():
        name = covers.store_cover(PNG)
    assert (shared / name).read_bytes() == PNG

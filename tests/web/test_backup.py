"""`flask backup` and `flask restore`: a round trip on the session's database (SQLite, or
PostgreSQL when DATABASE_URL is set), and archives that are tampered with, truncated or do not
fit, which are refused before anything changes."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import tarfile
from contextlib import contextmanager
from pathlib import Path

import joblib
import pytest
from sqlalchemy import delete, select, update

from tests.support import (
    TEST_PASSWORD,
    add_nights,
    base_test_config,
    clear_tables,
    demo_year_nights,
    make_user,
    skip_or_fail,
)
from webapp import create_app
from webapp.backup import database
from webapp.extensions import db
from webapp.gifts.models import Item
from webapp.pizzeria.models import Night

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40


@pytest.fixture(autouse=True)
def private_folders(app_config, tmp_path):
    """Every test app keeps its covers and uploads under its own tmp_path."""
    app_config.update(folders({}, tmp_path))


@pytest.fixture(scope="module")
def tools(database_url):
    """PostgreSQL needs pg_dump and pg_restore: skip loudly without them (fail under CI)."""
    missing = [name for name in ("pg_dump", "pg_restore") if shutil.which(name) is None]
    if database_url.startswith("postgresql") and missing:
        skip_or_fail(f"{' and '.join(missing)} not installed (apt install postgresql-client)")


def folders(config: dict, root: Path) -> dict:
    """Covers and uploads in a test's own folders, never the developer's instance/."""
    return {**config, "COVER_FOLDER": str(root / "covers"),
            "GIFTS_IMPORT_FOLDER": str(root / "uploads")}


def load_some(app) -> None:
    """Some users, the demo nights, one active dough model and a cover."""
    from webapp.ml_bridge import retrain_task
    from webapp.tavern.covers import store_cover

    with app.app_context():
        make_user("keeper", "admin")
        add_nights(demo_year_nights())
        retrain_task(lambda *_: None, kind="dough", trained_by="test")
        store_cover(PNG)


@contextmanager
def fresh_app(config):
    """A new app (a new worker): it has no model in memory and must load what is on disk."""
    other = create_app(config)
    try:
        yield other
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


def served(config, model_dir: Path) -> dict:
    """Per kind, the version a new worker serves and its predictions on the smoke input; and
    the pages a host sees, with the version header."""
    from webapp.ml_bridge import KINDS, serve

    with fresh_app(config) as other:
        answers = {}
        with other.app_context():
            for kind in KINDS:
                model = serve(kind)
                smoke = json.loads((model_dir / kind / f"{model.version}.json").read_text())
                answers[kind] = (model.version, repr(model.model.predict(smoke["smoke_input"])))
        client = other.test_client()
        client.post("/login", data={"username": "test-host", "password": TEST_PASSWORD})
        for url in ("/pizzeria/predict?reservations=20",
                    "/tavern/suggestions?budget=premium&gameplay=Adventure&gameplay=RPG"):
            response = client.get(url, headers={"HX-Request": "true"})
            assert response.status_code == 200
            answers[url] = (response.headers.get("X-Model-Version"), response.data)
    return answers


def contents(app) -> dict:
    """Row counts per table, and the rows the test changes."""
    with app.app_context():
        return {
            "counts": database.row_counts(db.engine),
            "nights": sorted(db.session.execute(select(Night.date, Night.doughs)).all()),
            "items": sorted(db.session.scalars(select(Item.name))),
        }


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()} if folder.exists() else {}


def backup(runner, output: Path, *options: str) -> Path:
    result = runner.invoke(args=["backup", "--output", str(output), *options])
    assert result.exit_code == 0, result.output
    archives = sorted(output.glob("*.tar.gz")) if output.is_dir() else [output]
    assert len(archives) == 1
    return archives[0]


# --- The round trip -------------------------------------------------------------------------


def test_a_backup_restores_rows_models_and_covers_after_they_were_lost(
        app, app_config, runner, auth, tools, tmp_path, monkeypatch):
    from webapp import registry
    from webapp.ml_bridge import retrain_task
    from webapp.tavern.covers import store_cover

    assert runner.invoke(args=["demo", "load"]).exit_code == 0  # users, nights, games, labels,
    auth.ensure_user("host")                                    # gifts and 4 active models
    with app.app_context():
        cover = store_cover(PNG)
    models, covers = tmp_path / "models", tmp_path / "covers"
    answers = served(app_config, models)  # first: a login may write rows (an audit log)
    before = contents(app)
    assert before["counts"]["pizzeria_night"] > 300 and before["counts"]["gifts_label"] > 0
    model_files = files_under(models)

    (tmp_path / "backups").mkdir()
    archive = backup(runner, tmp_path / "backups")  # a folder: the archive gets a dated name
    assert archive.name.startswith("curate-backup-")
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600  # it holds password hashes
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert {entry["kind"] for entry in manifest["models"]} == {"dough", "games", "labels",
                                                              "gifts"}
    assert f"covers/{cover}" in manifest["files"]

    # Lose data: a retrain moves the active dough model, rows are deleted and changed, and
    # every model file and cover is deleted.
    with app.app_context():
        newer = retrain_task(lambda *_: None, kind="dough", trained_by="test")["version"]
        registry.activate("dough", newer, "test", reason="test")
        db.session.execute(delete(Night))
        db.session.execute(update(Item).values(name="renamed"))
        db.session.commit()
    assert served(app_config, models)["dough"][0] != answers["dough"][0]
    shutil.rmtree(models)
    shutil.rmtree(covers)
    assert contents(app) != before

    # Restore never unpickles: the holders load (and verify) the files later.
    monkeypatch.setattr(joblib, "load", lambda *a, **k: pytest.fail("restore unpickled"))
    result = runner.invoke(args=["restore", str(archive), "--yes"])
    monkeypatch.undo()
    assert result.exit_code == 0, result.output
    assert "every SHA-256 matches" in result.output and "Restored:" in result.output
    assert "as in the archive" in result.output

    assert contents(app) == before
    assert served(app_config, models) == answers
    assert files_under(covers) == {cover: PNG}
    restored = files_under(models)
    assert restored.items() <= model_files.items()  # the same bytes, at the same names
    assert {name.split("/")[0] for name in restored} == {"dough", "games", "labels", "gifts"}

    # Restoring the same archive again changes nothing and says so.
    again = runner.invoke(args=["restore", str(archive), "--yes"])
    assert again.exit_code == 0, again.output
    assert "already in place" in again.output and ": written" not in again.output
    assert contents(app) == before


# --- Archives that are refused --------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(database_url, tools, tmp_path_factory):
    """One backup (made by its own app) for every test that alters or refuses it."""
    root = tmp_path_factory.mktemp("archive")
    source = create_app(folders(base_test_config(database_url, root), root))
    load_some(source)
    path = backup(source.test_cli_runner(), root / "backup.tar.gz")
    with source.app_context():
        clear_tables(db)
        db.session.remove()
        db.engine.dispose()
    return path


@pytest.fixture
def lost(app, tmp_path):
    """What a refused restore must leave alone: other rows, and a file in MODEL_DIR."""
    with app.app_context():
        make_user("survivor", "staff")
        add_nights(demo_year_nights()[:7])
    (tmp_path / "models" / "dough").mkdir(parents=True)
    (tmp_path / "models" / "dough" / "keep.json").write_text("{}")
    return state(app, tmp_path)


def state(app, tmp_path) -> tuple:
    return contents(app), files_under(tmp_path / "models"), files_under(tmp_path / "covers")


def repack(source: Path, target: Path, change=None, drop: str = "", extra=()) -> Path:
    """Copy an archive member by member; ``change(name, data)`` may alter a member's bytes."""
    with tarfile.open(source) as tar_in, tarfile.open(target, "w:gz") as tar_out:
        for member in tar_in:
            if member.name.startswith(drop or "\0"):
                continue
            data = tar_in.extractfile(member).read()
            data = change(member.name, data) if change else data
            member.size = len(data)
            tar_out.addfile(member, io.BytesIO(data))
        for info, data in extra:
            tar_out.addfile(info, io.BytesIO(data))
    return target


def flip_in(prefix: str):
    """A ``change`` that flips one byte in the middle of the members under ``prefix``."""
    def change(name: str, data: bytes) -> bytes:
        if not name.startswith(prefix):
            return data
        altered = bytearray(data)
        altered[len(altered) // 2] ^= 0xFF
        return bytes(altered)
    return change


def edit_manifest(edit):
    def change(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        edit(manifest)
        return json.dumps(manifest).encode()
    return change


def member(name: str, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    if kind == tarfile.SYMTYPE:
        info.linkname = "/etc/passwd"
    return info


def set_model_sha(manifest):
    name = next(name for name in manifest["files"] if name.endswith(".joblib"))
    manifest["files"][name]["sha256"] = "0" * 64


TAMPERING = {
    "database-byte": ({"change": flip_in("database/")}, "does not match its SHA-256"),
    "model-byte": ({"change": flip_in("models/")}, "does not match its SHA-256"),
    "manifest-digest": ({"change": edit_manifest(set_model_sha)}, "does not match its SHA-256"),
    "member-dropped": ({"drop": "covers/"}, "is missing covers/"),
    "member-added": ({"extra": [(member("models/dough/extra.joblib"), b"")]},
                     "which its manifest does not list"),
    "path-traversal": ({"extra": [(member("../../evil.py"), b"")]}, "unsafe or unknown name"),
    "hidden-file": ({"extra": [(member("models/.evil"), b"")]}, "unsafe or unknown name"),
    "symlink": ({"extra": [(member("covers/link.png", tarfile.SYMTYPE), b"")]},
                "is not a regular file"),
    "no-manifest": ({"drop": "manifest.json"}, "has no manifest.json"),
}


@pytest.mark.parametrize("how", TAMPERING)
def test_a_tampered_archive_is_refused_and_nothing_changes(app, runner, tmp_path, archive,
                                                           lost, how):
    options, message = TAMPERING[how]
    tampered = repack(archive, tmp_path / "tampered.tar.gz", **options)
    result = runner.invoke(args=["restore", str(tampered), "--yes"])
    assert result.exit_code == 1
    assert message in result.output and "Nothing was changed." in result.output
    assert state(app, tmp_path) == lost


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, -1], ids=["10%", "50%", "90%", "all-but-1"])
def test_a_truncated_archive_is_refused_and_nothing_changes(app, runner, tmp_path, archive,
                                                            lost, keep):
    data = archive.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[:keep] if keep == -1 else data[: int(len(data) * keep)])
    result = runner.invoke(args=["restore", str(cut), "--yes"])
    assert result.exit_code == 1
    assert "is truncated or damaged" in result.output
    assert "Nothing was changed." in result.output
    assert state(app, tmp_path) == lost


def test_a_schema_newer_than_the_code_is_refused(app, runner, tmp_path, archive, lost):
    def newer(manifest):
        manifest["schema"]["revision"] = "f00dfeedbeef"

    future = repack(archive, tmp_path / "future.tar.gz", change=edit_manifest(newer))
    result = runner.invoke(args=["restore", str(future), "--yes"])
    assert result.exit_code == 1
    assert "schema (f00dfeedbeef) is newer than this code knows" in result.output
    assert state(app, tmp_path) == lost


def test_another_database_kind_is_refused(app, runner, tmp_path, archive, lost):
    with app.app_context():
        here = db.engine.dialect.name
    other = "postgresql" if here == "sqlite" else "sqlite"

    def elsewhere(manifest):
        manifest["database"]["dialect"] = other

    moved = repack(archive, tmp_path / "other.tar.gz", change=edit_manifest(elsewhere))
    result = runner.invoke(args=["restore", str(moved), "--yes"])
    assert result.exit_code == 1
    assert f"holds a {other} database, and this Curate is configured for {here}" in result.output
    assert state(app, tmp_path) == lost


def test_restore_asks_first_and_a_no_changes_nothing(app, runner, tmp_path, archive, lost):
    result = runner.invoke(args=["restore", str(archive)], input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output
    assert "Restoring replaces every row of" in result.output
    assert state(app, tmp_path) == lost
    result = runner.invoke(args=["restore", str(archive)], input="y\n")
    assert result.exit_code == 0, result.output
    assert len(contents(app)["nights"]) == len(demo_year_nights())
    assert "keep.json" in files_under(tmp_path / "models" / "dough")  # others are left alone


def test_a_damaged_artefact_is_left_out_of_the_backup_and_reported(app, runner, tools,
                                                                   tmp_path):
    load_some(app)
    joblib_file = next((tmp_path / "models" / "dough").glob("*.joblib"))
    joblib_file.write_bytes(joblib_file.read_bytes() + b"tampered")
    output = tmp_path / "second.tar.gz"
    result = runner.invoke(args=["backup", "--output", str(output)])
    assert result.exit_code == 1
    assert "NOT INCLUDED: dough model" in result.output
    assert "changed after publishing" in result.output
    with tarfile.open(output) as tar:  # the database is still backed up
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest["models"] == [] and manifest["database"]["tables"]["pizzeria_night"] > 300


def test_backup_options_choose_versions_and_folders(app, runner, tools, tmp_path):
    from webapp.ml_bridge import retrain_task

    load_some(app)
    with app.app_context():
        retrain_task(lambda *_: None, kind="dough", trained_by="test")  # the first is retired
    (tmp_path / "uploads").mkdir(exist_ok=True)
    (tmp_path / "uploads" / "waiting.upload").write_bytes(b"a,b\n1,2\n")
    (tmp_path / "uploads" / ".partial.tmp").write_bytes(b"skipped: a temporary file")
    result = runner.invoke(args=["backup", "--output", str(tmp_path / "all.tar.gz"),
                                 "--all-versions", "--uploads", "--no-covers", "--quiet"])
    assert result.exit_code == 0 and result.output == ""  # cron mails only failures
    everything = tmp_path / "all.tar.gz"
    with tarfile.open(everything) as tar:
        names = tar.getnames()
    assert sum(name.endswith(".joblib") for name in names) == 2
    assert "uploads/waiting.upload" in names and not any(".partial" in n for n in names)
    assert not any(name.startswith("covers/") for name in names)


# --- PostgreSQL client tools (fake ones on PATH: these run on every database) -------------------


def fake_tool(folder: Path, name: str, version: str, fail_with: str = "") -> None:
    script = folder / name
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--version" ]; then echo "{name} (PostgreSQL) {version}"; exit 0; fi\n'
        f'echo "{fail_with}" >&2; exit 1\n')
    script.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    return folder


def test_a_missing_pg_dump_is_named_with_the_package_to_install(bin_dir):
    with pytest.raises(database.DatabaseError, match="pg_dump was not found on PATH.*"
                       "postgresql-client"):
        database.dump_tool(15)


def test_a_pg_dump_older_than_the_server_is_refused_before_it_runs(bin_dir):
    fake_tool(bin_dir, "pg_dump", "13.2")
    with pytest.raises(database.DatabaseError,
                       match="pg_dump 13.2 cannot dump a PostgreSQL 15 server"):
        database.dump_tool(15)
    assert database.dump_tool(13)[1] == "pg_dump 13.2"


def test_a_pg_restore_older_than_the_archive_is_refused(bin_dir):
    fake_tool(bin_dir, "pg_restore", "13.2")
    with pytest.raises(database.DatabaseError, match="made by pg_dump 15.20, and pg_restore 13 "
                       "cannot read it"):
        database.restore_tool("pg_dump 15.20")
    assert database.restore_tool("pg_dump 12.1") == str(bin_dir / "pg_restore")


def test_a_failing_tool_shows_its_own_message_and_what_to_do(bin_dir):
    fake_tool(bin_dir, "pg_dump", "15.2", "pg_dump: error: aborting because of server version "
              "mismatch")
    with pytest.raises(database.DatabaseError) as caught:
        database.run_tool([str(bin_dir / "pg_dump"), "--file=x"], dict(os.environ))
    assert "pg_dump failed (exit 1): pg_dump: error: aborting because of server version " \
           "mismatch" in str(caught.value)
    assert "Install the PostgreSQL client tools of the server's major version" in str(
        caught.value)


def test_postgresql_refuses_a_database_newer_than_the_archive(app, monkeypatch):
    """pg_restore --clean would leave a later migration's tables behind: empty database only.
    (SQLite replaces every page, so it has no such check.)"""
    from webapp.backup import service

    with app.app_context():
        order = service._migration_order()
        assert len(order) > 2
        monkeypatch.setattr(database, "revision", lambda engine: order[0])
        with pytest.raises(service.RestoreRefused, match=f"the database is at schema "
                           f"{order[0]}, newer than the archive's {order[1]}.*empty database"):
            service._refuse_newer_live_schema(order[1], order)
        service._refuse_newer_live_schema(order[0], order)  # the same schema: fine
        monkeypatch.setattr(database, "revision", lambda engine: order[1])
        service._refuse_newer_live_schema(order[0], order)  # an older database: fine
        monkeypatch.setattr(database, "revision", lambda engine: None)
        service._refuse_newer_live_schema(order[1], order)  # an empty database: fine

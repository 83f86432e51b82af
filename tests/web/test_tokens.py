"""API tokens: the service in ``webapp.auth.tokens`` and the ``flask users token*`` commands."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest

from tests.support import make_user
from webapp.auth import tokens
from webapp.auth.models import utcnow
from webapp.auth.service import find_user
from webapp.auth.tokens import ApiToken
from webapp.extensions import db


@pytest.fixture
def ctx(app):
    """Run the test body inside an app context."""
    with app.app_context():
        yield


@pytest.fixture
def alice(ctx):
    return make_user("alice", "staff")


def only_token():
    [token] = db.session.scalars(db.select(ApiToken)).all()
    return token


def test_create_token_stores_only_the_hash_and_a_prefix(alice):
    raw = tokens.create_token(alice, "  till  ")
    assert len(raw) == 43 and re.fullmatch(r"[A-Za-z0-9_-]+", raw)  # token_urlsafe(32)
    token = only_token()
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert token.prefix == raw[:8]
    assert token.label == "till" and token.user_id == alice.id
    assert token.last_used_at is None and token.revoked_at is None
    assert raw not in {token.token_hash, token.name, token.prefix}


def test_tokens_are_unique(alice):
    assert tokens.create_token(alice, "a") != tokens.create_token(alice, "a")


@pytest.mark.parametrize("label", ["", "   ", "x" * 65])
def test_create_token_refuses_an_empty_or_overlong_label(alice, label):
    with pytest.raises(ValueError, match="1 to 64 characters"):
        tokens.create_token(alice, label)
    assert db.session.scalars(db.select(ApiToken)).all() == []


def test_authenticate_returns_the_tokens_user(alice):
    raw = tokens.create_token(alice, "till")
    assert tokens.authenticate(raw) == alice
    assert tokens.authenticate(raw[:-1]) is None
    assert tokens.authenticate(raw + "x") is None
    assert tokens.authenticate("") is None


def test_a_revoked_token_authenticates_no_one(alice):
    raw = tokens.create_token(alice, "till")
    revoked = tokens.revoke(only_token().id)
    assert revoked.revoked_at is not None
    assert tokens.authenticate(raw) is None


def test_revoking_twice_keeps_the_first_time_and_unknown_ids_give_none(alice):
    tokens.create_token(alice, "till")
    first = tokens.revoke(only_token().id).revoked_at
    assert tokens.revoke(only_token().id).revoked_at == first
    assert tokens.revoke(999999) is None


def test_an_inactive_users_tokens_fail_until_reactivated(alice):
    raw = tokens.create_token(alice, "till")
    alice.active = False
    db.session.commit()
    assert tokens.authenticate(raw) is None
    alice.active = True
    db.session.commit()
    assert tokens.authenticate(raw) == alice


def test_last_used_is_written_at_most_once_a_minute(alice):
    raw = tokens.create_token(alice, "till")
    tokens.authenticate(raw)
    first = only_token().last_used_at
    assert first is not None and utcnow() - first < timedelta(seconds=5)
    tokens.authenticate(raw)
    assert only_token().last_used_at == first  # within the minute: no write

    stale = utcnow() - timedelta(minutes=2)
    only_token().last_used_at = stale
    db.session.commit()
    tokens.authenticate(raw)
    assert only_token().last_used_at > stale + timedelta(minutes=1)


def test_tokens_for_lists_one_users_tokens_oldest_first(alice):
    bob = make_user("bob", "host")
    tokens.create_token(alice, "first")
    tokens.create_token(bob, "bobs")
    tokens.create_token(alice, "second")
    tokens.revoke(tokens.tokens_for(alice)[0].id)
    assert [t.label for t in tokens.tokens_for(alice)] == ["first", "second"]
    assert [t.label for t in tokens.tokens_for(bob)] == ["bobs"]


# --- flask users token / tokens / revoke-token ---------------------------------------------


def created_token(output: str) -> str:
    return re.search(r"Token \(shown once\): (\S+)", output).group(1)


def test_token_command_prints_a_working_token_once(app, runner):
    with app.app_context():
        make_user("alice", "host")
    result = runner.invoke(args=["users", "token", "ALICE", "--label", "till"])
    assert result.exit_code == 0, result.output
    raw = created_token(result.output)
    assert result.output.count(raw) == 1
    assert "Authorization: Bearer" in result.output
    with app.app_context():
        assert tokens.authenticate(raw) == find_user("alice")
        assert only_token().label == "till"

    listing = runner.invoke(args=["users", "tokens", "alice"])
    assert listing.exit_code == 0, listing.output
    assert raw not in listing.output  # never shown again, only its prefix
    header, row = listing.output.strip().splitlines()
    assert header.split("\t") == ["id", "label", "prefix", "created", "last used", "revoked"]
    token_id, label, prefix, created, last_used, revoked = row.split("\t")
    assert (label, prefix, revoked) == ("till", raw[:8], "-")
    minute = r"\d{4}-\d\d-\d\d \d\d:\d\d"
    assert re.fullmatch(minute, created) and re.fullmatch(minute, last_used)  # used just above


def test_token_command_uses_a_default_label(app, runner):
    with app.app_context():
        make_user("alice", "host")
    assert runner.invoke(args=["users", "token", "alice"]).exit_code == 0
    with app.app_context():
        assert only_token().label == "api"


def test_revoke_token_command_stops_the_token(app, runner):
    with app.app_context():
        make_user("alice", "staff")
    raw = created_token(runner.invoke(args=["users", "token", "alice"]).output)
    with app.app_context():
        token_id = only_token().id

    result = runner.invoke(args=["users", "revoke-token", str(token_id)])
    assert result.exit_code == 0, result.output
    assert f"Token {token_id} (api, {raw[:8]}…) of alice is revoked since" in result.output
    with app.app_context():
        assert tokens.authenticate(raw) is None
    [row] = runner.invoke(args=["users", "tokens", "alice"]).output.strip().splitlines()[1:]
    *_, last_used, revoked = row.split("\t")
    assert last_used == "-" and revoked != "-"  # never used: a revoked token is not "used"


def test_token_commands_fail_clearly(app, runner):
    result = runner.invoke(args=["users", "token", "nobody"])
    assert result.exit_code == 1 and "No user called 'nobody'" in result.output
    result = runner.invoke(args=["users", "tokens", "nobody"])
    assert result.exit_code == 1 and "No user called 'nobody'" in result.output
    result = runner.invoke(args=["users", "revoke-token", "424242"])
    assert result.exit_code == 1 and "No API token with id 424242" in result.output
    result = runner.invoke(args=["users", "revoke-token", "abc"])
    assert result.exit_code == 2

    with app.app_context():
        make_user("alice", "staff")
    result = runner.invoke(args=["users", "token", "alice", "--label", "x" * 65])
    assert result.exit_code == 2 and "1 to 64 characters" in result.output
    assert "has no API tokens" in runner.invoke(args=["users", "tokens", "alice"]).output


def test_token_command_refuses_an_inactive_user(app, runner):
    with app.app_context():
        make_user("alice", "staff").active = False
        db.session.commit()
    result = runner.invoke(args=["users", "token", "alice"])
    assert result.exit_code == 1 and "inactive" in result.output
    with app.app_context():
        assert db.session.scalars(db.select(ApiToken)).all() == []

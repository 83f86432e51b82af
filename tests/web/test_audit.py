"""The audit log: every recorded action kind through the request tier (or its command), the
same-transaction guarantee, and the admin's /admin/audit page (filters, pages, empty state)."""

from __future__ import annotations

import getpass
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.support import add_nights, demo_year_nights, make_user, wait_for_job
from tests.web.test_gifts_queue import decide_url, make_groups, make_item, suggest
from webapp import audit, jobs
from webapp.audit import AuditEvent
from webapp.auth import tokens
from webapp.auth.service import find_user
from webapp.extensions import db
from webapp.gifts import rules as rules_service
from webapp.gifts.models import Item, Rule

COFFEE = {"field": "text", "op": "contains", "value": "coffee"}


def events(app, **where) -> list[AuditEvent]:
    """The events matching ``where`` (column=value), oldest first, detached from the session."""
    with app.app_context():
        query = select(AuditEvent).filter_by(**where).order_by(AuditEvent.id)
        found = list(db.session.scalars(query))
        db.session.expunge_all()
        return found


def only(app, action: str) -> AuditEvent:
    [found] = events(app, action=action)
    return found


def user_id(app, username: str) -> int:
    with app.app_context():
        return find_user(username).id


def assert_by(found: AuditEvent, app, username: str, origin: str = "web") -> None:
    """The event names ``username`` (id and name) and where it came from."""
    assert (found.actor_id, found.actor_name, found.origin) == (
        user_id(app, username), username, origin)


# --- labels -----------------------------------------------------------------------------------

@pytest.fixture
def labels(app):
    with app.app_context():
        yield make_groups()


def test_queue_decisions_and_their_undo_are_recorded(app, htmx_client, auth, labels):
    auth.login("staff")
    mug, tea, odd, pen = (make_item(name) for name in ("Mug", "Tea", "Odd", "Pen"))
    db.session.flush()
    suggest(mug, labels["theme:coffee"])
    suggest(mug, labels["theme:tea"])
    db.session.commit()
    coffee, sweets = labels["theme:coffee"].id, labels["theme:sweets"].id
    htmx_client.post(decide_url(mug.id), data={"action": "accept", "label_ids": [coffee]})
    htmx_client.post(decide_url(tea.id), data={"action": "reject"})
    htmx_client.post(decide_url(odd.id), data={"action": "skip"})
    htmx_client.post(decide_url(mug.id), data={"action": "edit", "label_ids": [sweets]})

    accept = only(app, "label.accept")
    assert_by(accept, app, "test-staff")
    assert (accept.subject_type, accept.subject_id) == ("item", str(mug.id))
    assert accept.detail == {"item": "Mug", "status": "accepted", "added": ["theme: coffee"],
                             "removed": ["theme: tea"]}  # the suggestion not chosen went
    assert accept.remote_addr == "127.0.0.1"
    assert only(app, "label.reject").detail == {"item": "Tea", "status": "rejected"}
    assert only(app, "label.skip").detail == {"item": "Odd", "status": "pending"}
    assert only(app, "label.edit").detail == {
        "item": "Mug", "status": "accepted", "added": ["theme: sweets"],
        "removed": ["theme: coffee"]}

    assert htmx_client.post("/gifts/queue/undo").status_code == 200  # undoes the edit
    undo = only(app, "label.undo")
    assert_by(undo, app, "test-staff")
    assert undo.subject_id == str(mug.id)
    assert undo.detail["undid"] == "edit"
    assert undo.detail["added"] == ["theme: coffee"] and undo.detail["removed"] == [
        "theme: sweets"]
    # A refused decision changes nothing and records nothing.
    assert htmx_client.post(decide_url(tea.id), data={"action": "accept"}).status_code == 409
    assert len(events(app, subject_type="item")) == 5
    assert pen.id  # never touched


def test_a_bulk_apply_and_its_undo_are_one_event_each(app, htmx_client, auth, labels):
    auth.login("staff")
    for index in range(30):
        make_item(f"Coffee {index}", category="Coffee")
    make_item("Tea", category="Tea")
    db.session.commit()
    form = {"category": "Coffee", "label_id": labels["theme:coffee"].id}
    htmx_client.post("/gifts/items/bulk", data=form)  # the confirmation changes nothing
    assert events(app, subject_type="batch") == []
    body = htmx_client.post("/gifts/items/bulk", data={**form, "confirm": "1"}).get_data(
        as_text=True)
    batch_id = re.search(r"/gifts/items/batches/([0-9a-f]{32})/undo", body)[1]
    applied = only(app, "label.bulk_apply")
    assert_by(applied, app, "test-staff")
    assert (applied.subject_type, applied.subject_id) == ("batch", batch_id)
    assert applied.detail == {"label": "theme: coffee", "count": 30}

    htmx_client.post("/gifts/items/bulk", data={**form, "confirm": "1"})  # nothing to add
    assert len(events(app, action="label.bulk_apply")) == 1

    assert htmx_client.post(f"/gifts/items/batches/{batch_id}/undo").status_code == 200
    undone = only(app, "label.bulk_undo")
    assert undone.subject_id == batch_id
    assert undone.detail == {"label": "theme: coffee", "count": 30, "refused": 0}
    assert len(events(app, subject_type="batch")) == 2  # one per bulk action, not per item
    assert len(events(app)) == 3  # and the creation of test-staff by the login helper


# --- rules ------------------------------------------------------------------------------------

@pytest.fixture
def coffee_label(labels) -> int:
    return labels["theme:coffee"].id


def rule_form(name: str, label_id: int, enabled: bool = True, **extra) -> dict:
    form = {"name": name, "priority": "100", "match": "all", "labels": [label_id],
            "conditions-0-field": "text", "conditions-0-op": "contains",
            "conditions-0-value": "coffee", **extra}
    if enabled:
        form["enabled"] = "y"
    return form


def test_rule_changes_are_recorded(app, htmx_client, auth, coffee_label):
    auth.login("staff")
    assert htmx_client.post("/gifts/rules", data=rule_form("Coffee", coffee_label)
                            ).status_code == 201
    with app.app_context():
        rule_id = db.session.scalar(select(Rule.id))
        rules_service.save_rule(Rule(), "Second", 200, {"match": "all", "conditions": [COFFEE]},
                                [coffee_label])
    created = events(app, action="rule.create")[0]
    assert_by(created, app, "test-staff")
    assert (created.subject_type, created.subject_id) == ("rule", str(rule_id))
    assert created.detail == {"name": "Coffee", "priority": 100, "enabled": True}

    response = htmx_client.post(f"/gifts/rules/{rule_id}", data=rule_form(
        "Coffee beans", coffee_label, version="1"))
    assert response.status_code == 200
    assert only(app, "rule.update").detail == {"name": "Coffee beans", "changed": ["name"]}

    htmx_client.post(f"/gifts/rules/{rule_id}/enabled", data={"enabled": "no"})
    htmx_client.post(f"/gifts/rules/{rule_id}/enabled", data={"enabled": "no"})  # no change
    htmx_client.post(f"/gifts/rules/{rule_id}/enabled", data={"enabled": "yes"})
    assert only(app, "rule.disable").subject_id == str(rule_id)
    assert only(app, "rule.enable").detail == {"name": "Coffee beans"}

    htmx_client.post(f"/gifts/rules/{rule_id}/move", data={"direction": "down"})
    assert only(app, "rule.move").detail == {"name": "Coffee beans", "direction": "down",
                                             "priority": 200}

    htmx_client.post(f"/gifts/rules/{rule_id}/delete")
    assert only(app, "rule.delete").detail == {"name": "Coffee beans"}
    restored = htmx_client.post(f"/gifts/rules/{rule_id}/restore", data={
        "name": "Coffee beans", "priority": "200", "enabled": "y",
        "condition": '{"match": "all", "conditions": [{"field": "text", "op": "contains", '
                     '"value": "coffee"}]}', "labels": [str(coffee_label)]})
    assert restored.status_code == 200
    again = events(app, action="rule.create")[-1]
    assert again.detail["restored"] is True and again.detail["name"] == "Coffee beans"
    assert_by(again, app, "test-staff")


def test_a_rejected_rule_save_records_nothing(app, htmx_client, auth, coffee_label):
    auth.login("staff")
    htmx_client.post("/gifts/rules", data=rule_form("Coffee", coffee_label))
    duplicate = htmx_client.post("/gifts/rules", data=rule_form("COFFEE", coffee_label))
    assert duplicate.status_code == 422
    with app.app_context():
        rule_id = db.session.scalar(select(Rule.id))
    stale = htmx_client.post(f"/gifts/rules/{rule_id}", data=rule_form(
        "Coffee beans", coffee_label, version="7"))
    assert stale.status_code == 409  # someone else's save won: nothing saved, nothing recorded
    assert [e.action for e in events(app, subject_type="rule")] == ["rule.create"]


def test_applying_rules_is_recorded_from_the_page_and_the_command(app, htmx_client, auth,
                                                                   runner, coffee_label):
    auth.login("staff")
    response = htmx_client.post("/gifts/rules/apply")
    assert response.status_code == 202
    with app.app_context():
        job = jobs.latest_job(rules_service.JOB_KIND, rules_service.JOB_SUBJECT)
        wait_for_job(job.id)
    applied = only(app, "rules.apply")
    assert_by(applied, app, "test-staff")
    assert applied.detail == {"job": job.id}
    result = runner.invoke(args=["gifts", "apply-rules"])
    assert result.exit_code == 0, result.output
    by_cli = events(app, action="rules.apply")[-1]
    assert (by_cli.actor_id, by_cli.actor_name, by_cli.origin) == (
        None, f"cli:{getpass.getuser()}", "cli")


# --- models -----------------------------------------------------------------------------------

def test_retrain_activation_and_rollback_are_recorded(app, htmx_client, auth, runner):
    with app.app_context():
        add_nights(demo_year_nights())
    auth.login("admin")
    versions = []
    for model_type in ("polynomial", "linear"):
        response = htmx_client.post("/admin/models/dough/retrain",
                                    data={"model_type": model_type, "degree": "2"})
        assert response.status_code == 202
        with app.app_context():
            versions.append(wait_for_job(jobs.latest_job("retrain", "dough").id)
                            .result["version"])
    first, candidate = versions

    requested = events(app, action="model.retrain")
    assert len(requested) == 2
    assert_by(requested[0], app, "test-admin")
    assert (requested[0].subject_type, requested[0].subject_id) == ("model", "dough")
    assert requested[0].detail["model_type"] == "polynomial" and requested[0].detail["job"]
    # The gate activated the first version inside the job, on behalf of who asked for it.
    gate = only(app, "model.activate")
    assert_by(gate, app, "test-admin", origin="background")
    assert gate.detail == {"version": first, "reason": "first model"}

    htmx_client.post(f"/admin/models/dough/versions/{candidate}/activate")
    by_hand = events(app, action="model.activate")[-1]
    assert_by(by_hand, app, "test-admin")
    assert by_hand.detail == {"version": candidate, "reason": "activated by hand"}
    htmx_client.post("/admin/models/dough/rollback")
    rollback = only(app, "model.rollback")
    assert_by(rollback, app, "test-admin")
    assert rollback.detail == {"version": first, "reason": "rollback"}

    # A refused activation records nothing; the command line is "cli:<OS user>".
    assert htmx_client.post("/admin/models/dough/versions/nope/activate").status_code == 422
    assert len(events(app, subject_type="model")) == 5
    result = runner.invoke(args=["models", "activate", "dough", candidate])
    assert result.exit_code == 0, result.output
    by_cli = events(app, action="model.activate")[-1]
    assert (by_cli.actor_name, by_cli.origin, by_cli.detail["version"]) == (
        f"cli:{getpass.getuser()}", "cli", candidate)


def test_a_second_retrain_while_one_runs_records_nothing(app, htmx_client, auth):
    from webapp.jobs.models import Job

    auth.login("admin")
    with app.app_context():
        db.session.add(Job(kind="retrain", subject="dough", params={"kind": "dough"},
                           status="running", dedupe_key="retrain:dough"))
        db.session.commit()
    response = htmx_client.post("/admin/models/dough/retrain",
                                data={"model_type": "linear", "degree": "2"})
    assert response.status_code == 200  # the running one is shown: no new job
    # Only the job made above (by this test, as "system"): the refused insert left no event.
    assert [e.actor_name for e in events(app, action="model.retrain")] == ["system"]


# --- users and tokens -------------------------------------------------------------------------

def test_account_changes_are_recorded(app, htmx_client, auth):
    auth.login("admin")
    htmx_client.post("/admin/users", data={"username": "carla", "role": "host"})
    helper, created = events(app, action="user.create")
    assert (helper.actor_name, helper.origin) == ("system", "background")  # auth.login's
    assert_by(created, app, "test-admin")
    carla = user_id(app, "carla")
    assert (created.subject_type, created.subject_id) == ("user", str(carla))
    assert created.detail == {"username": "carla", "role": "host"}

    htmx_client.post(f"/admin/users/{carla}/role", data={"role": "staff"})
    htmx_client.post(f"/admin/users/{carla}/role", data={"role": "staff"})  # no change
    assert only(app, "user.role").detail == {"username": "carla", "from": "host", "to": "staff"}
    htmx_client.post(f"/admin/users/{carla}/active")
    htmx_client.post(f"/admin/users/{carla}/active")
    assert only(app, "user.deactivate").subject_id == str(carla)
    assert only(app, "user.activate").detail == {"username": "carla"}
    response = htmx_client.post(f"/admin/users/{carla}/password")
    reset = only(app, "user.password_reset")
    assert_by(reset, app, "test-admin")
    assert reset.detail == {"username": "carla", "generated": True}
    new_password = re.search(r'<code class="secret">([^<]+)</code>',
                             response.get_data(as_text=True))[1]
    with app.app_context():
        # Never a password, nor its hash, in the log.
        stored = " ".join(str(e.detail) for e in db.session.scalars(select(AuditEvent)))
        assert new_password not in stored and find_user("carla").password_hash not in stored


def test_refused_account_changes_record_nothing(app, htmx_client, auth):
    auth.login("admin")
    htmx_client.post("/admin/users", data={"username": "test-admin", "role": "host"})  # taken
    me = user_id(app, "test-admin")
    htmx_client.post(f"/admin/users/{me}/role", data={"role": "host"})  # your own
    htmx_client.post(f"/admin/users/{me}/active")
    assert [e.detail["username"] for e in events(app)] == ["test-admin"]  # the login helper's


def test_account_commands_are_recorded_as_cli(app, runner):
    result = runner.invoke(args=["users", "create", "dora", "--role", "staff",
                                 "--generate-password"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        make_user("root", "admin")
    runner.invoke(args=["users", "set-role", "dora", "host"])
    runner.invoke(args=["users", "reset-password", "dora"])
    cli = f"cli:{getpass.getuser()}"
    found = [(e.action, e.actor_name, e.origin) for e in events(app, subject_id=str(
        user_id(app, "dora")))]
    assert found == [("user.create", cli, "cli"), ("user.role", cli, "cli"),
                     ("user.password_reset", cli, "cli")]


def test_token_issue_and_revoke_are_recorded(app, htmx_client, auth, runner):
    auth.login("admin")
    with app.app_context():
        make_user("sam", "staff")
    htmx_client.post("/admin/users/tokens", data={"username": "sam", "label": "till",
                                                  "role": "host"})
    issued = only(app, "token.issue")
    assert_by(issued, app, "test-admin")
    with app.app_context():
        token = tokens.tokens_for(find_user("sam"))[0]
        token_id, prefix = token.id, token.prefix
    assert (issued.subject_type, issued.subject_id) == ("token", str(token_id))
    assert issued.detail == {"user": "sam", "label": "till", "role": "host", "prefix": prefix}
    htmx_client.post(f"/admin/users/tokens/{token_id}/revoke")
    htmx_client.post(f"/admin/users/tokens/{token_id}/revoke")  # twice: revoked once
    revoked = only(app, "token.revoke")
    assert_by(revoked, app, "test-admin")
    assert revoked.detail == {"user": "sam", "label": "till", "prefix": prefix}

    runner.invoke(args=["users", "token", "sam", "--label", "scripts"])
    with app.app_context():
        second = tokens.tokens_for(find_user("sam"))[-1].id
    runner.invoke(args=["users", "revoke-token", str(second)])
    cli = f"cli:{getpass.getuser()}"
    assert [(e.action, e.actor_name) for e in events(app)][-2:] == [
        ("token.issue", cli), ("token.revoke", cli)]


# --- the same transaction as the change -------------------------------------------------------

def test_a_change_whose_event_cannot_be_written_is_rolled_back(app, client, auth,
                                                               coffee_label, monkeypatch):
    """No change without its event: when the audit insert fails, the change fails with it."""
    with app.app_context():
        rule_id = rules_service.save_rule(Rule(), "Coffee", 100, {
            "match": "all", "conditions": [COFFEE]}, [coffee_label]).id
    auth.login("staff")

    def broken_record(*args, **kwargs):
        db.session.add(AuditEvent(actor_name="x", origin="web", action=None))  # NOT NULL

    monkeypatch.setattr(audit, "record", broken_record)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # the 500 page, as in production
    response = client.post(f"/gifts/rules/{rule_id}/enabled", data={"enabled": "no"})
    assert response.status_code == 500
    with app.app_context():
        assert db.session.get(Rule, rule_id).enabled  # the switch did not happen
        assert [e.action for e in db.session.scalars(select(AuditEvent))] == [
            "rule.create", "user.create"]  # before the switch; the switch left none


def test_a_change_that_fails_leaves_no_event(app, labels, monkeypatch):
    """No event without its change: the event is only a pending row until the change commits."""
    from webapp.gifts import labelling

    with app.app_context():
        item = make_item("Mug")
        db.session.commit()

        def failing_commit():
            raise RuntimeError("the database went away")

        monkeypatch.setattr(db.session, "commit", failing_commit)
        with pytest.raises(RuntimeError):
            labelling.decide(item, "reject", [], "ann")
        monkeypatch.undo()
        db.session.rollback()
        assert db.session.get(Item, item.id).status == "pending"
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_unknown_actions_and_subjects_are_refused(app):
    with app.app_context(), pytest.raises(ValueError, match="Unknown audit action"):
        audit.record("label.acept")
    with app.app_context(), pytest.raises(ValueError, match="Unknown audit subject"):
        audit.record("label.accept", "items")


def test_details_stay_short(app):
    with app.app_context():
        event = audit.record("rule.create", "rule", 1, {"name": "x" * 5000,
                                                        "labels": list(range(100))})
        assert len(event.detail["name"]) == audit.TEXT_MAX
        assert event.detail["labels"][-1] == "… and 80 more"
        db.session.rollback()


def test_every_action_kind_has_a_test_here():
    source = Path(__file__).read_text()
    untested = [action for action in audit.ACTIONS if f'"{action}"' not in source]
    assert not untested, untested


# --- the page ---------------------------------------------------------------------------------

def login_with_an_empty_log(app, auth) -> None:
    """Log in as admin, then forget the account's creation, so the log holds only the test's."""
    auth.login("admin")
    with app.app_context():
        db.session.execute(AuditEvent.__table__.delete())
        db.session.commit()


def add_events(app, count: int, **values) -> None:
    with app.app_context():
        for index in range(count):
            fields = {"actor_name": "ann", "origin": "web", "action": "rule.create",
                      "subject_type": "rule", "subject_id": str(index),
                      "detail": {"name": f"Rule {index}"}, **values}
            db.session.add(AuditEvent(**fields))
        db.session.commit()


def row_ids(body: str) -> list[int]:
    return [int(found) for found in re.findall(r'<tr id="audit-(\d+)"', body)]


def test_the_page_has_an_empty_state_and_a_nav_link(app, client, auth):
    login_with_an_empty_log(app, auth)
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "Nothing has been changed yet." in page
    assert 'href="/admin/audit"' in page and 'aria-current="page">Audit' in page


def test_the_page_lists_newest_first_a_page_at_a_time(app, client, htmx_client, auth):
    app.config["PAGE_SIZE"] = 10
    login_with_an_empty_log(app, auth)
    add_events(app, 25)
    first = client.get("/admin/audit").get_data(as_text=True)
    ids = row_ids(first)
    assert len(ids) == 10 and ids == sorted(ids, reverse=True)
    assert "Page 1 of 3 · 25 in all" in first and "Rule 24" in first and "created a rule" in first
    third = htmx_client.get("/admin/audit?page=3")
    body = third.get_data(as_text=True)
    assert "<html" not in body and body.lstrip().startswith('<section id="audit-results"')
    assert len(row_ids(body)) == 5 and "Rule 0" in body
    beyond = client.get("/admin/audit?page=9").get_data(as_text=True)
    assert "There is nothing on this page." in beyond


def test_the_page_filters_by_actor_action_and_subject(app, client, htmx_client, auth):
    app.config["PAGE_SIZE"] = 10
    login_with_an_empty_log(app, auth)
    add_events(app, 12)
    add_events(app, 3, actor_name="bob", action="rule.delete")
    add_events(app, 2, actor_name="bob", action="user.create", subject_type="user")
    page = client.get("/admin/audit").get_data(as_text=True)
    assert '<option value="bob">bob</option>' in page  # the actors in the log
    body = htmx_client.get("/admin/audit?actor=bob").get_data(as_text=True)
    assert len(row_ids(body)) == 5
    body = htmx_client.get("/admin/audit?actor=bob&action=rule.delete").get_data(as_text=True)
    assert len(row_ids(body)) == 3 and "deleted a rule" in body
    body = htmx_client.get("/admin/audit?subject=user").get_data(as_text=True)
    assert len(row_ids(body)) == 2
    body = htmx_client.get("/admin/audit?action=rule.create").get_data(as_text=True)
    assert "Page 1 of 2 · 12 in all" in body
    assert "/admin/audit?page=2&amp;action=rule.create" in body  # pages keep the filters
    body = htmx_client.get("/admin/audit?actor=carol").get_data(as_text=True)
    assert len(row_ids(body)) == 10  # an actor the log does not know is ignored
    body = htmx_client.get("/admin/audit?action=user.create&actor=ann").get_data(as_text=True)
    assert "No change matches these filters." in body


def test_details_are_escaped_on_the_page(app, client, auth):
    add_events(app, 1, actor_name="<script>x</script>",
               detail={"name": "<script>alert(1)</script>"})
    auth.login("admin")
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "<script>x</script>" not in page


def test_only_admins_see_the_page(client, auth):
    auth.login("staff")
    assert client.get("/admin/audit").status_code == 403


def test_api_requests_are_recorded_with_their_tokens_user(app):
    """An API request acts as its token's user (no audited API change exists yet)."""
    from flask import g

    with app.app_context():
        user = make_user("sam", "staff")
        with app.test_request_context("/api/v1/gifts/proposals", method="POST",
                                      environ_base={"REMOTE_ADDR": "10.0.0.7"}):
            g.api_user = user
            assert audit.current_actor() == audit.Actor(user.id, "sam", "api", "10.0.0.7")

"""`flask users` and `flask demo` commands."""

from __future__ import annotations

from webapp.auth.service import find_user


def test_create_user_with_unknown_role_fails_clearly(app, runner):
    result = runner.invoke(args=["users", "create", "bob", "--role", "chef"])
    assert result.exit_code == 2
    assert "'chef' is not one of 'admin', 'staff', 'host'" in result.output
    with app.app_context():
        assert find_user("bob") is None


def test_create_user_generates_and_prints_a_password(app, runner):
    result = runner.invoke(args=["users", "create", "bob", "--role", "staff", "--generate-password"])
    assert result.exit_code == 0, result.output
    password = result.output.split("(shown once): ")[1].strip()
    with app.app_context():
        user = find_user("bob")
        assert user.role == "staff" and user.check_password(password)


def test_create_user_prompts_for_the_password(app, runner):
    result = runner.invoke(args=["users", "create", "ann", "--role", "host"],
                           input="s3cret-pass\ns3cret-pass\n")
    assert result.exit_code == 0, result.output
    assert "Generated password" not in result.output
    with app.app_context():
        assert find_user("ann").check_password("s3cret-pass")


def test_create_user_refuses_a_short_password_and_a_duplicate(app, runner):
    result = runner.invoke(args=["users", "create", "ann", "--role", "host"], input="short\nshort\n")
    assert result.exit_code != 0 and "at least 8 characters" in result.output
    runner.invoke(args=["users", "create", "ann", "--role", "host", "--generate-password"])
    result = runner.invoke(args=["users", "create", "ANN", "--role", "staff", "--generate-password"])
    assert result.exit_code == 1 and "already exists" in result.output


def test_demo_load_is_idempotent(app, runner):
    first = runner.invoke(args=["demo", "load"])
    assert first.exit_code == 0, first.output
    assert first.output.count("(shown once)") == 3
    second = runner.invoke(args=["demo", "load"])
    assert second.exit_code == 0
    assert "(shown once)" not in second.output
    with app.app_context():
        assert {find_user(name).role for name in ("admin", "staff", "host")} == {
            "admin", "staff", "host"}

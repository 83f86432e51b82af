"""Page-or-block rendering: fragments for htmx, whole pages otherwise, Vary always set."""

from __future__ import annotations


def test_htmx_request_gets_only_the_block(htmx_client, auth):
    auth.login("admin")
    response = htmx_client.get("/admin/users")
    assert response.status_code == 200
    assert b"<html" not in response.data
    assert response.data.lstrip().startswith(b'<section id="user-table"')
    assert "HX-Request" in response.headers["Vary"]


def test_plain_request_gets_the_whole_page(client, auth):
    auth.login("admin")
    response = client.get("/admin/users")
    assert b"<html" in response.data
    assert b'id="user-table"' in response.data and b'id="user-form"' in response.data
    assert "HX-Request" in response.headers["Vary"]


def test_boosted_and_history_restore_requests_get_the_whole_page(htmx_client, auth):
    auth.login("admin")
    for header in ("HX-Boosted", "HX-History-Restore-Request"):
        response = htmx_client.get("/admin/users", headers={header: "true"})
        assert b"<html" in response.data, header


def test_vary_is_sent_on_every_response(client):
    assert "HX-Request" in client.get("/login").headers["Vary"]
    assert "HX-Request" in client.get("/healthz").headers["Vary"]


def test_htmx_error_fragment_for_unknown_url(htmx_client, auth):
    auth.login("staff")
    response = htmx_client.get("/no/such/page")
    assert response.status_code == 404
    assert b"<html" not in response.data
    assert response.headers["HX-Retarget"] == "#flash"
    assert b"Not found" in response.data


def test_navigation_marks_exactly_the_current_section(client, auth):
    auth.login("admin")
    for path, label in (("/admin/models", b"Models"), ("/admin/users", b"Users"),
                        ("/", b"Home"), ("/pizzeria/", b"Pizzeria")):
        page = client.get(path).data
        main_nav = page.split(b'<nav class="nav"', 1)[1].split(b"</nav>", 1)[0]
        assert main_nav.count(b'aria-current="page"') == 1, path
        assert b'aria-current="page">' + label in main_nav, path

"""Issue 11.5: the admin's doors (view-only detail page, chart permission and caching, login throttling)."""

from __future__ import annotations

import uuid
from ipaddress import ip_network

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from functions.models import Function

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"fake chart bytes"
LOGIN_URL = reverse("admin:login")


@pytest.fixture
def function() -> Function:
    run = uuid.uuid4()
    return Function.objects.create(
        expression="sin(t)",
        dt=1,
        interval=1,
        state=Function.State.DONE,
        run_id=run,
        result_run=run,
        chart=PNG,
        processed_at=timezone.now(),
    )


def staff_client(client, username: str, *codenames: str):
    user = get_user_model().objects.create_user(username, password="pw-for-tests-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def chart_url(function: Function) -> str:
    return reverse("admin:functions_function_chart", args=[function.pk])


def test_a_view_only_user_gets_the_detail_page(client, function):
    viewer = staff_client(client, "viewer", "view_function")
    response = viewer.get(reverse("admin:functions_function_change", args=[function.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "sin(t)" in page
    assert f"{chart_url(function)}?v={function.result_run}" in page
    assert 'name="_save"' not in page  # nothing to save
    # And posting to it changes nothing.
    response = viewer.post(
        reverse("admin:functions_function_change", args=[function.pk]),
        {"preset": "__custom__", "expression": "t", "dt": 2, "interval": 2},
    )
    assert response.status_code == 403
    function.refresh_from_db()
    assert (function.expression, function.dt) == ("sin(t)", 1)


def test_the_permission_check_comes_before_the_etag(client, function):
    nobody = staff_client(client, "nobody")
    url = chart_url(function)
    # A matching ETag, and one that matches nothing: both 403, no 304/200 oracle.
    for etag in (f'"{function.result_run}"', '"something-else"'):
        assert nobody.get(url, headers={"if-none-match": etag}).status_code == 403
    assert nobody.get(reverse("admin:functions_function_chart", args=[function.pk + 1000])).status_code == 403


def test_the_versioned_chart_url_is_cached_by_the_browser(client, function):
    viewer = staff_client(client, "viewer", "view_function")
    response = viewer.get(chart_url(function), {"v": str(function.result_run)})
    assert response.status_code == 200
    assert bytes(response.content) == PNG
    directives = {d.strip() for d in response["Cache-Control"].split(",")}
    assert directives == {"private", "max-age=31536000", "immutable"}
    assert "Expires" not in response  # no never_cache
    assert response["ETag"] == f'"{function.result_run}"'


def test_an_unversioned_or_stale_chart_url_is_revalidated(client, function):
    viewer = staff_client(client, "viewer", "view_function")
    for query in ({}, {"v": str(uuid.uuid4())}):
        response = viewer.get(chart_url(function), query)
        assert response.status_code == 200
        assert {d.strip() for d in response["Cache-Control"].split(",")} == {"private", "no-cache"}
        again = viewer.get(chart_url(function), query, headers={"if-none-match": response["ETag"]})
        assert again.status_code == 304


def login(client, username: str, password: str, **meta: str):
    return client.post(LOGIN_URL, {"username": username, "password": password, "next": "/admin/"}, **meta)


def test_login_is_throttled_after_repeated_failures(client, settings, axes_clean):
    get_user_model().objects.create_superuser("boss", "boss@example.com", "the-right-password-1")
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert login(client, "boss", "wrong").status_code == 200  # the form again, with an error
    assert login(client, "boss", "wrong").status_code == 429  # the limit-th failure locks the pair out
    # Locked out: even the right password does not open a session now.
    locked = login(client, "boss", "the-right-password-1")
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    # Another user from elsewhere is not locked out by these failures.
    get_user_model().objects.create_superuser("other", "other@example.com", "other-password-1")
    assert login(client, "other", "other-password-1").status_code == 302


def test_a_few_failures_do_not_lock_the_right_password_out(client, settings, axes_clean):
    get_user_model().objects.create_superuser("boss", "boss@example.com", "the-right-password-1")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login(client, "boss", "wrong")
    assert login(client, "boss", "the-right-password-1").status_code == 302


# Behind a reverse proxy (issue 19): every client reaches the admin from the proxy's address.
PROXY = "10.0.0.2"
ATTACKER, ADMIN_HOME = "203.0.113.7", "198.51.100.1"


def via_proxy(client_address: str, forwarded: str = "") -> dict[str, str]:
    """What the proxy sends: its own address, and X-Forwarded-For with the client's appended."""
    return {
        "REMOTE_ADDR": PROXY,
        "HTTP_X_FORWARDED_FOR": f"{forwarded}, {client_address}" if forwarded else client_address,
    }


def test_behind_a_trusted_proxy_an_attacker_cannot_lock_the_administrator_out(client, settings, axes_clean):
    settings.TRUSTED_PROXIES = (ip_network(PROXY),)
    get_user_model().objects.create_superuser("boss", "boss@example.com", "the-right-password-1")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "boss", "wrong", **via_proxy(ATTACKER)).status_code == 200
    # The attacker even writes the administrator's address into the header: the proxy appends the real one.
    assert login(client, "boss", "wrong", **via_proxy(ATTACKER, forwarded=ADMIN_HOME)).status_code == 429
    assert login(client, "boss", "the-right-password-1", **via_proxy(ATTACKER)).status_code == 429
    # The administrator, through the same proxy from home, is not locked out.
    assert login(client, "boss", "the-right-password-1", **via_proxy(ADMIN_HOME)).status_code == 302


def test_a_forwarded_for_from_an_untrusted_address_is_not_believed(client, settings, axes_clean):
    """Straight to the admin (no trusted proxy in between), X-Forwarded-For changes nothing."""
    get_user_model().objects.create_superuser("boss", "boss@example.com", "the-right-password-1")
    for trusted in ((), (ip_network(PROXY),)):  # no proxy configured, or one that is not this client
        settings.TRUSTED_PROXIES = trusted
        AccessAttempt.objects.all().delete()
        for i in range(settings.AXES_FAILURE_LIMIT):
            forged = {"REMOTE_ADDR": ATTACKER, "HTTP_X_FORWARDED_FOR": f"192.0.2.{i + 1}"}
            answer = login(client, "boss", "wrong", **forged)
        assert answer.status_code == 429  # one address: the connection's, whatever the header says
        assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}


def test_one_address_trying_many_user_names_is_locked_out_alone(client, settings, axes_clean):
    settings.TRUSTED_PROXIES = (ip_network(PROXY),)
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = settings.AXES_FAILURE_LIMIT + 3
    get_user_model().objects.create_superuser("boss", "boss@example.com", "the-right-password-1")
    names = iter(f"guess{i}" for i in range(100))
    for _ in range(settings.LOGIN_ADDRESS_FAILURE_LIMIT - 1):  # one failure per name: no pair is near its limit
        assert login(client, next(names), "wrong", **via_proxy(ATTACKER)).status_code == 200
    assert login(client, next(names), "wrong", **via_proxy(ATTACKER)).status_code == 429
    # The address is locked out for any name, even with a right password...
    assert login(client, next(names), "wrong", **via_proxy(ATTACKER)).status_code == 429
    assert login(client, "boss", "the-right-password-1", **via_proxy(ATTACKER)).status_code == 429
    # ...and only that address.
    assert login(client, "boss", "the-right-password-1", **via_proxy(ADMIN_HOME)).status_code == 302

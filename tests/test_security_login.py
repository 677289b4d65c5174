"""Issue 19 row 7: a login with an over-long user name is a failed login, not a 500."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

LOGIN_URL = reverse("admin:login")


@pytest.mark.parametrize("length", [151, 256, 300, 5000])
def test_an_over_long_user_name_is_a_failed_login(axes_clean, length):
    client = Client(raise_request_exception=False)
    response = client.post(LOGIN_URL, {"username": "u" * length, "password": "wrong", "next": "/admin/"})
    assert response.status_code == 200, response.status_code
    assert "errornote" in response.content.decode() or "errorlist" in response.content.decode()
    assert "_auth_user_id" not in client.session

"""Issue 19 row 4: numbers that make no sense are refused at the form, naming the field, and a
stored row that holds them (an old one) never makes the series, CSV or detail page answer 500."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from functions.models import Function

pytestmark = pytest.mark.django_db


@pytest.fixture
def boss() -> Client:
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-for-tests-1")
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("dt", "interval", "field"),
    [
        ("1e-320", "1", "dt"),
        ("1e-7", "1", "dt"),  # 0.36 ms
        ("1e300", "1", "dt"),
        ("1", "1e300", "interval"),
        ("1", "36526", "interval"),
        ("1", "1e-320", "interval"),
    ],
)
def test_the_add_form_refuses_numbers_that_make_no_sense_naming_the_field(boss, dt, interval, field):
    response = boss.post(
        reverse("admin:functions_function_add"),
        {"preset": "sin(t)", "expression": "", "dt": dt, "interval": interval},
    )
    assert response.status_code == 200  # the form again, with the error
    errors = response.context["adminform"].form.errors
    assert set(errors) == {field}, errors
    assert field in errors[field][0] and "100" in errors[field][0]
    assert not Function.objects.exists()


@pytest.mark.parametrize(("dt", "interval"), [(1e-320, 1.0), (1.0, 1e300), (1e-320, 1e300)])
def test_a_stored_row_with_odd_numbers_never_answers_500(boss, dt, interval):
    run = uuid.uuid4()
    row = Function.objects.create(
        expression="sin(t)", dt=dt, interval=interval, state=Function.State.DONE, run_id=run,
        result_run=run, processed_at=timezone.now(),
    )  # fmt: skip
    for name in ("functions_function_points", "functions_function_csv"):
        response = boss.get(reverse(f"admin:{name}", args=[row.pk]))
        assert 400 <= response.status_code < 500, (name, response.status_code)
        body = response.content.decode()
        assert "100 years" in body and ("dt" in body or "interval" in body), body[:300]
    assert boss.get(reverse("admin:functions_function_change", args=[row.pk])).status_code == 200
    assert boss.get(reverse("admin:functions_function_changelist")).status_code == 200

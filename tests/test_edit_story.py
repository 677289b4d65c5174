"""Editing a function through the real change form (HTTP), on the real services.

Each edit saves exactly what was chosen, draws a new chart from it when what the
chart shows changed (checked against what the render stage drew, not only that a
PNG exists), and says "changed" only when something did.
"""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from functions import services
from functions.models import Function
from tests.rows import settled

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

CUSTOM = "__custom__"


@pytest.fixture
def signed_in(client):
    client.force_login(get_user_model().objects.create_superuser("editor", "editor@example.com", "pw-for-tests-1"))
    return client


def make(expression: str, dt: float = 1, interval: float = 1) -> Function:
    function = services.create_function(expression=expression, dt=dt, interval=interval)
    return settled([function.pk])[0]


def edit(client, pk: int, preset: str, expression: str, dt: str = "1", interval: str = "1"):
    url = reverse("admin:functions_function_change", args=[pk])
    data = {"preset": preset, "expression": expression, "dt": dt, "interval": interval, "_save": "Save"}
    return client.post(url, data, follow=True)


def drawn(function: Function) -> dict:
    return function.trace["render"]["drawn"]


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.mark.parametrize(
    ("start", "preset", "box", "expected"),
    [
        ("t + 2/t", "sin(t)", "", "sin(t)"),  # preset -> the other preset
        ("sin(t)", "t + 2/t", "", "t + 2/t"),
        ("t*t + 1", "sin(t)", "t*t + 1", "sin(t)"),  # custom -> preset, the old text left in the box
        ("t + 2/t", CUSTOM, "cos(t / 3600)", "cos(t / 3600)"),  # preset -> custom
    ],
)
def test_an_edit_of_the_function_saves_what_was_chosen_and_draws_it(stack, signed_in, start, preset, box, expected):
    row = make(start)
    before = row.run_id
    response = edit(signed_in, row.pk, preset, box)
    assert response.status_code == 200
    assert any("changed successfully" in message for message in messages_of(response)), messages_of(response)
    (after,) = settled([row.pk])
    assert after.expression == expected
    assert after.run_id != before and after.state == Function.State.DONE, after.error
    assert drawn(after) == {"expression": expected, "dt": 1.0, "interval": 1.0}


def test_an_edit_of_dt_and_interval_only_draws_the_new_sampling(stack, signed_in):
    row = make("sin(t)")
    response = edit(signed_in, row.pk, "sin(t)", "", dt="0.5", interval="2")
    assert any("changed successfully" in message for message in messages_of(response))
    (after,) = settled([row.pk])
    assert (after.expression, after.dt, after.interval) == ("sin(t)", 0.5, 2.0)
    assert drawn(after) == {"expression": "sin(t)", "dt": 0.5, "interval": 2.0}


@pytest.mark.parametrize(("start", "preset", "box"), [("sin(t)", "sin(t)", ""), ("t*t + 1", CUSTOM, " t*t + 1 ")])
def test_saving_an_unchanged_form_says_nothing_changed_and_draws_nothing(stack, signed_in, start, preset, box):
    row = make(start)
    response = edit(signed_in, row.pk, preset, box)
    shown = messages_of(response)
    assert not any("changed successfully" in message for message in shown), shown
    assert any("Nothing changed" in message for message in shown), shown
    after = Function.objects.get(pk=row.pk)
    assert (after.run_id, after.result_run, after.expression) == (row.run_id, row.result_run, start)

"""Issue 19 row 1: the change list accepts only the lookups it offers (the admin's lookup_allowed)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from functions.models import Function

pytestmark = pytest.mark.django_db

LIST_URL = reverse("admin:functions_function_changelist")


@pytest.fixture
def viewer() -> Client:
    """A view-only staff user; server errors come back as responses, not exceptions."""
    user = get_user_model().objects.create_user("viewer", password="pw-for-tests-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_function"))
    client = Client(raise_request_exception=False)
    client.force_login(user)
    Function.objects.create(expression="sin(t)", dt=1, interval=1)
    return client


@pytest.mark.parametrize(
    "query",
    [
        {"expression__regex": "("},
        {"expression__iregex": "(a+)+$"},
        {"id__gt": "0"},
        {"dt__lt": "1e300"},
        {"chart__isnull": "false"},
        {"created_at__year": "2020"},
        {"run_id": "x"},
    ],
)
def test_a_lookup_the_list_does_not_offer_is_refused_with_400(viewer, query):
    response = viewer.get(LIST_URL, query)
    assert response.status_code == 400, response.status_code


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"state__exact": "done"},
        {"q": "sin"},
        {"o": "1"},
        {"p": "1"},
        {"all": ""},
        {"e": "1"},
        {"state__exact": "queued", "q": "(", "o": "-2.1"},
    ],
)
def test_the_lookups_the_list_offers_still_work(viewer, query):
    response = viewer.get(LIST_URL, query)
    assert response.status_code == 200, response.status_code


def test_the_detail_page_keeps_the_lists_filters(viewer):
    function = Function.objects.get()
    url = reverse("admin:functions_function_change", args=[function.pk])
    response = viewer.get(url, {"_changelist_filters": "state__exact=queued"})
    assert response.status_code == 200
    assert "state__exact%3Dqueued" in response.content.decode()  # the link back to the filtered list

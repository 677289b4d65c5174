"""The project's own strings in English and Russian, chosen by the browser's language."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from functions.models import Function

LIST_URL = reverse("admin:functions_function_changelist")


@pytest.fixture
def staff_client(client, db):
    get_user_model().objects.create_superuser("i18n", "i18n@example.com", "pw-for-tests-2")
    client.login(username="i18n", password="pw-for-tests-2")
    return client


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", ["Refresh", "processing date", "dt, hours", "interval, days", "chart"]),
        ("ru", ["Обновить", "дата обработки", "dt, часы", "interval, дни", "график"]),
    ],
)
def test_the_list_speaks_the_browsers_language(staff_client, language, words):
    Function.objects.create(expression="sin(t)", dt=1, interval=1)  # the list shows columns once it has rows
    page = staff_client.get(LIST_URL, headers={"accept-language": language}).content.decode()
    for word in words:
        assert word.lower() in page.lower()

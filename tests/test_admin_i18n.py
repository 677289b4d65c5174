"""The project's own strings in English and Russian, chosen by the browser's language."""

import pytest
from django.urls import reverse

from functions.models import Function

LIST_URL = reverse("admin:functions_function_changelist")


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", ["Refresh", "processing date", "dt, hours", "interval, days", "chart"]),
        ("ru", ["Обновить", "дата обработки", "dt, часы", "interval, дни", "график"]),
    ],
)
def test_the_list_speaks_the_browsers_language(admin_client, language, words):
    Function.objects.create(expression="sin(t)", dt=1, interval=1)  # the list shows columns once it has rows
    page = admin_client.get(LIST_URL, headers={"accept-language": language}).content.decode()
    for word in words:
        assert word.lower() in page.lower()

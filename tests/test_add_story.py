"""The add-a-function story on the real services (brief, user story steps 1-4)."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from PIL import Image

from functions.models import Function
from pipeline import settings as pipeline_settings

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

ADD_URL = reverse("admin:functions_function_add")
LIST_URL = reverse("admin:functions_function_changelist")


@pytest.fixture
def signed_in(client):
    client.force_login(get_user_model().objects.create_superuser("tester", "tester@example.com", "pw-for-tests-1"))
    return client


def add(client, expression: str, dt: float = 1, interval: float = 1, preset: str | None = None):
    data = {"preset": preset or "__custom__", "expression": "" if preset else expression}
    data |= {"dt": dt, "interval": interval}
    return client.post(ADD_URL, data)


def test_adding_a_preset_ends_with_a_stored_png_of_the_configured_size(stack, signed_in):
    response = add(signed_in, "", preset="t + 2/t", dt=1, interval=1)
    assert response.status_code == 302, response.content[:2000]
    function = Function.objects.get()
    assert function.expression == "t + 2/t"
    # The add view waited for the chain: the chart is already there.
    assert function.state == Function.State.DONE, function.error
    assert function.error == ""
    image = Image.open(io.BytesIO(bytes(function.chart)))
    image.load()
    assert image.format == "PNG"
    assert image.size == (pipeline_settings.CHART_WIDTH, pipeline_settings.CHART_HEIGHT)
    # Not a blank image: a chart has many colours (axes, labels, the line).
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 20
    assert function.processed_at is not None
    assert function.result_run == function.run_id

    page = signed_in.get(LIST_URL).content.decode()
    assert "y = t + 2/t" in page
    chart_url = reverse("admin:functions_function_chart", args=[function.pk])
    assert chart_url in page
    for header in ("function", "chart", "dt, hours", "interval, days", "processing date"):
        assert header in page.lower()
    assert ADD_URL in page  # the Add button


def test_each_stage_ran_on_its_own_queue_and_worker(stack, signed_in):
    add(signed_in, "sin(t)", preset="sin(t)")
    trace = Function.objects.get().trace
    assert {stage: info["queue"] for stage, info in trace.items()} == {
        "points": "points",
        "render": "render",
        "persist": "persist",
    }
    workers = {stage: info["worker"].split("@")[0] for stage, info in trace.items()}
    assert workers == {"points": "points", "render": "render", "persist": "persist"}
    # The detail page shows that trace as a table, one row per stage.
    detail = signed_in.get(reverse("admin:functions_function_change", args=[Function.objects.get().pk]))
    page = detail.content.decode()
    for stage in ("points", "render", "persist"):
        assert f"<tr><td>{stage}</td><td>{stage}</td>" in page


def test_each_worker_consumes_only_its_own_queue_on_the_broker(stack):
    from pipeline.celery import app

    replies = app.control.inspect(timeout=2).active_queues()
    consumed = {name.split("@")[0]: sorted(q["name"] for q in queues) for name, queues in replies.items()}
    assert consumed == {"points": ["points"], "render": ["render"], "persist": ["persist"]}
    with app.connection_for_write() as conn, conn.channel() as channel:
        for queue in ("points", "render", "persist"):
            _, _, consumers = channel.queue_declare(queue=queue, passive=True)
            assert consumers >= 1, queue


def test_a_failing_function_stores_its_exception_text_and_a_processing_date(stack, signed_in):
    response = add(signed_in, "1/(t - t)")
    assert response.status_code == 302, response.content[:2000]
    function = Function.objects.get()
    assert function.state == Function.State.FAILED
    assert function.chart is None
    assert 'Stage "points" failed' in function.error
    assert "division by zero" in function.error
    assert function.processed_at is not None

    page = signed_in.get(LIST_URL).content.decode()
    assert "division by zero" in page


def test_the_chart_is_served_with_cache_validation(stack, signed_in):
    add(signed_in, "", preset="sin(t)")
    function = Function.objects.get()
    url = reverse("admin:functions_function_chart", args=[function.pk])
    first = signed_in.get(url)
    assert first.status_code == 200
    assert first["Content-Type"] == "image/png"
    assert bytes(first.content) == bytes(function.chart)
    etag = first["ETag"]
    again = signed_in.get(url, headers={"if-none-match": etag})
    assert again.status_code == 304
    signed_in.logout()
    assert signed_in.get(url).status_code == 302  # to the login page


def test_an_invalid_custom_expression_is_refused_on_its_field(stack, signed_in):
    response = add(signed_in, "t + + ")
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "expression" in errors
    assert not Function.objects.exists()


@pytest.mark.parametrize(
    ("dt", "interval", "field"),
    [
        (0, 1, "dt"),
        (-1, 1, "dt"),
        ("abc", 1, "dt"),
        (1, 0, "interval"),
        (1, "inf", "interval"),
        (0.0001, 36500, "dt"),  # 3e9 samples: over datagen's limit, said before saving
    ],
)
def test_bad_parameters_are_refused_with_the_field_named(stack, signed_in, dt, interval, field):
    response = add(signed_in, "", preset="sin(t)", dt=dt, interval=interval)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field], errors
    assert not Function.objects.exists()

"""Issues 11.4/11.6 (admin side): arbitrary text on the real add form, against the real datagen.

Whatever is typed into any field, the admin answers the form again (200, the
problem on its field) or saves (302), never a 5xx; and every saved row is one
that datagen itself accepts as a series it can draw.
"""

from __future__ import annotations

import pytest
import requests
from django.contrib.auth import get_user_model
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from functions.forms import CUSTOM, PRESETS
from functions.models import Function
from pipeline import settings as pipeline_settings
from pipeline.charts import plot_width

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

ADD_URL = reverse("admin:functions_function_add")

any_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=300)
numberish = st.one_of(
    any_text,
    st.integers().map(str),
    st.floats().map(repr),
    st.sampled_from(["1e308", "-1e308", "1e-320", "nan", "inf", "-0", "1,5", " 2 ", "٣", "1_0", "0x10", "9" * 400]),
)
expressions = st.one_of(
    any_text,
    st.sampled_from(["t", "sin(t)", "t*t + 2/t", "1/0", "sqrt(-t)", "(" * 3000 + "t" + ")" * 3000, "t" * 600]),
    st.lists(st.sampled_from(["t", "sin", "(", ")", "+", "-", "*", "/", "^", "1e9", ",", " ", "x", ";", "'"])).map(
        "".join
    ),
)
presets = st.one_of(st.just(CUSTOM), st.sampled_from(PRESETS), any_text)


@pytest.fixture
def admin_client(client):
    client.force_login(get_user_model().objects.create_superuser("hostile", "h@example.com", "pw-for-tests-9"))
    return client


def datagen_accepts(function: Function) -> bool:
    response = requests.post(
        pipeline_settings.DATAGEN_URL + "/api/v1/validate",
        json={
            "expression": function.expression,
            "interval": function.interval,
            "dt": function.dt,
            "width": plot_width(pipeline_settings.CHART_WIDTH),
        },
        timeout=30,
    )
    return response.status_code == 200 and response.json().get("valid") is True


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(preset=presets, expression=expressions, dt=numberish, interval=numberish)
@example(preset=CUSTOM, expression="t\x00", dt="1", interval="1")
@example(preset=CUSTOM, expression="(" * 3000 + "t" + ")" * 3000, dt="1", interval="1")
@example(preset=CUSTOM, expression="t", dt="1e-300", interval="1e300")
@example(preset=CUSTOM, expression="sin(t)", dt="0.5", interval="2")
@example(preset="t + 2/t", expression="anything", dt="1", interval="1")
def test_arbitrary_text_on_the_add_form_never_yields_a_5xx_or_a_row_datagen_refuses(
    stack, admin_client, preset, expression, dt, interval
):
    before = set(Function.objects.values_list("pk", flat=True))
    response = admin_client.post(ADD_URL, {"preset": preset, "expression": expression, "dt": dt, "interval": interval})
    assert response.status_code in (200, 302), response.content[:1000]
    saved = Function.objects.exclude(pk__in=before)
    if response.status_code == 200:
        assert not saved.exists()
    else:
        (function,) = saved
        assert datagen_accepts(function), (function.expression, function.dt, function.interval)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"preset=__custom__&expression=%FF%FE%00t&dt=%C0%AF&interval=1", "application/x-www-form-urlencoded"),
        (b"\xff\xfe\x00\x01garbage", "application/x-www-form-urlencoded"),
        (b'{"expression": "t"}', "application/json"),
        (b'--x\r\nContent-Disposition: form-data; name="dt"\r\n\r\n\xff\r\n--x--', "multipart/form-data; boundary=x"),
    ],
)
def test_bad_encodings_and_odd_bodies_on_the_add_form_are_never_a_5xx(stack, admin_client, body, content_type):
    response = admin_client.generic("POST", ADD_URL, body, content_type=content_type)
    assert response.status_code in (200, 400), response.content[:500]
    assert not Function.objects.exists()

"""Pure functions of the pipeline: chart options, export server targets."""

import math

import pytest

from pipeline.charts import chart_options
from pipeline.errors import StageFailure


def test_datetime_axis_in_milliseconds_and_the_function_as_title():
    options = chart_options("t + 2/t", [[1_700_000_000.0, 1.0], [1_700_003_600.0, 2.5]], 1, 1)
    assert options["xAxis"]["type"] == "datetime"
    assert options["title"]["text"] == "y = t + 2/t"
    assert options["series"][0]["data"] == [[1_700_000_000_000.0, 1.0], [1_700_003_600_000.0, 2.5]]


@pytest.mark.parametrize(
    "points",
    [[], [[1.0]], [[1.0, math.nan]], [[1.0, math.inf]], [["1", 2.0]], [None]],
)
def test_anything_but_finite_pairs_is_refused(points):
    with pytest.raises(StageFailure):
        chart_options("t", points, 1, 1)


def test_every_address_of_a_scaled_export_server_name_is_a_target(monkeypatch):
    from pipeline import tasks

    assert tasks.exporter_targets(["http://127.0.0.1:7801", "http://localhost:7802"]) == [
        "http://127.0.0.1:7801",
        "http://localhost:7802",
    ]
    assert tasks.exporter_targets(["http://no-such-host.invalid:7801"]) == ["http://no-such-host.invalid:7801"]

    # A compose service scaled to three replicas: its name answers three addresses.
    replicas = [(2, 1, 6, "", (ip, 7801)) for ip in ("172.18.0.7", "172.18.0.5", "172.18.0.6")]
    monkeypatch.setattr(tasks.socket, "getaddrinfo", lambda *args, **kwargs: replicas)
    assert tasks.exporter_targets(["http://exporter:7801"]) == [
        "http://172.18.0.5:7801",
        "http://172.18.0.6:7801",
        "http://172.18.0.7:7801",
    ]


def test_concurrent_renders_of_one_process_spread_over_the_export_servers(monkeypatch):
    from contextlib import ExitStack

    from pipeline import settings, tasks

    monkeypatch.setattr(settings, "EXPORTER_URLS", ["http://127.0.0.1:7801", "http://127.0.0.1:7802"])
    with ExitStack() as leases:
        held = [leases.enter_context(tasks.exporter_lease("render@host", 0)) for _ in range(4)]
        assert sorted(held) == ["http://127.0.0.1:7801"] * 2 + ["http://127.0.0.1:7802"] * 2
    assert not +tasks._in_flight  # every lease was given back
    with tasks.exporter_lease("render@host", 0) as first:
        pass
    with tasks.exporter_lease("render@host", 1) as retry:
        pass
    assert retry != first  # a retry moves on to the next export server

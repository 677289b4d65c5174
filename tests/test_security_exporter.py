"""Issues 11.2 and 10.5: the export server does only what the render stage needs.

Against a real export server (``deploy/run exporter``: server.mjs, Chromium):
no file read through ``globalOptions``/``themeOptions``, no request from
Chromium to anywhere (a local HTTP server on 127.0.0.1 plays "outside" and must
receive nothing), no UI, and no Chromium left behind by any signal.
"""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.settings import PORT
from tests.stack import Process, http_ok, wait_until

ROOT = Path(__file__).resolve().parent.parent
LOCKED_PORT = PORT + 21  # the stack's export servers use PORT + 11, + 12
SIGNAL_PORT = PORT + 22
INTERCEPT_ONLY_PORT = PORT + 23


class Outside:
    """An HTTP server on 127.0.0.1 that records every request it receives."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                hits.append(f"{self.command} {self.path}")
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()

            do_GET = do_POST = do_HEAD = do_OPTIONS = do_CONNECT = _record

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_exporter(name: str, port: int, tmp: Path, **extra: str) -> Process:
    env = {**os.environ, "EXPORTER_PORT": str(port), "EXPORTER_TMP_DIR": str(tmp / f"profile-{port}"), **extra}
    process = Process(name, ["exporter"], env).start()
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if not process.running:
            raise RuntimeError(f"{name} exited:\n{process.tail()}")
        return http_ok(url + "/health")

    wait_until(healthy, 60, name)
    return process


@pytest.fixture(scope="module")
def outside():
    server = Outside()
    yield server
    server.close()


@pytest.fixture(scope="module")
def exporter(tmp_path_factory):
    process = start_exporter("exporter-locked", LOCKED_PORT, tmp_path_factory.mktemp("exporter"))
    yield f"http://127.0.0.1:{LOCKED_PORT}"
    process.stop()


def chart(**options) -> dict:
    return {"title": {"text": "probe"}, "series": [{"data": [1, 3, 2, 4]}], **options}


def render(url: str, body: dict) -> requests.Response:
    return requests.post(url + "/", json=body, timeout=60)


def test_a_plain_chart_still_renders(exporter):
    response = render(exporter, {"type": "png", "infile": chart(), "width": 400, "height": 300, "scale": 1})
    assert response.status_code == 200, response.text[:500]
    assert Image.open(io.BytesIO(response.content)).size == (400, 300)


@pytest.mark.parametrize("field", ["globalOptions", "themeOptions"])
def test_no_file_is_read_through_global_or_theme_options(exporter, tmp_path, field):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"chart": {"backgroundColor": "#ff0000"}}))
    answers = []
    for path in (str(secret), str(tmp_path / "missing.json")):
        for value in (path, json.dumps(path)):  # a bare path, and a JSON string holding it
            response = render(exporter, {"type": "png", "infile": chart(), field: value})
            answers.append((response.status_code, response.json()))
    # Refused, naming the field, and the same answer whether the file exists or not (no oracle).
    assert {status for status, _ in answers} == {400}
    assert all(field in body["message"] for _, body in answers)
    assert len({json.dumps(body, sort_keys=True) for _, body in answers}) == 1
    # An object is still accepted, and it is what decides the colour.
    red = render(exporter, {"type": "png", "infile": chart(), field: {"chart": {"backgroundColor": "#ff0000"}}})
    assert red.status_code == 200
    assert Image.open(io.BytesIO(red.content)).convert("RGB").getpixel((2, 2)) == (255, 0, 0)


def fetch_vectors(target: str) -> dict[str, dict]:
    """Each way of making Chromium fetch a URL, as the request body that tries it."""
    img = f'<img src="{target}/usehtml-img.png">'
    svg_ns = 'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
    return {
        "plotBackgroundImage": {"infile": chart(chart={"plotBackgroundImage": f"{target}/plot-background.png"})},
        "useHTML img": {"infile": chart(title={"useHTML": True, "text": img})},
        "useHTML data label img": {
            "infile": chart(series=[{"data": [1, 2], "dataLabels": {"enabled": True, "useHTML": True, "format": img}}])
        },
        "marker url() image": {
            "infile": chart(
                series=[{"data": [1, 2], "marker": {"enabled": True, "symbol": f"url({target}/marker.png)"}}]
            )
        },
        "CSS url()": {
            "infile": chart(
                chart={"style": {"backgroundImage": f"url({target}/css-url.png)"}},
                title={"text": "x", "style": {"background": f"url({target}/css-title.png)"}},
            )
        },
        "CSS @import": {
            "infile": chart(title={"useHTML": True, "text": f"<style>@import url({target}/import.css);</style>x"})
        },
        "SVG image href": {
            "svg": f'<svg {svg_ns} width="10" height="10"><image href="{target}/svg-image.png" width="10" height="10"/>'
            f'<image xlink:href="{target}/svg-xlink.png" width="10" height="10"/></svg>'
        },
        "SVG foreignObject": {
            "svg": f'<svg {svg_ns} width="10" height="10"><foreignObject width="10" height="10">'
            f'<div xmlns="http://www.w3.org/1999/xhtml"><img src="{target}/foreign.png"/></div></foreignObject></svg>'
        },
        "resources CSS @import": {"infile": chart(), "resources": {"css": f"@import url({target}/res.css);"}},
        "resources files": {"infile": chart(), "resources": {"files": [f"{target}/res.js"]}},
    }


def assert_nothing_fetched(url: str, outside: Outside) -> None:
    statuses = {}
    for name, body in fetch_vectors(outside.url).items():
        response = render(url, {"type": "png", **body})
        statuses[name] = response.status_code
        assert response.status_code in (200, 400), (name, response.status_code, response.text[:300])
    time.sleep(1.5)  # an image load started by a page would arrive by now
    assert outside.hits == [], (outside.hits, statuses)


def test_chromium_fetches_nothing_for_any_vector(exporter, outside):
    assert_nothing_fetched(exporter, outside)


def test_the_outside_server_does_record_requests(outside):
    # The assertion above can fail: a request that does reach it is recorded.
    requests.get(outside.url + "/self-check", timeout=5)
    assert outside.hits == ["GET /self-check"]
    outside.hits.clear()


def test_request_interception_alone_blocks_every_vector(outside, tmp_path):
    """Without config.json's refusing proxy, the in-page interception still blocks everything."""
    config = json.loads((ROOT / "exporter" / "config.json").read_text())
    config["puppeteer"]["args"] = [a for a in config["puppeteer"]["args"] if not a.startswith("--proxy")]
    assert len(config["puppeteer"]["args"]) > 10
    path = tmp_path / "config-no-proxy.json"
    path.write_text(json.dumps(config))
    process = start_exporter("exporter-intercept-only", INTERCEPT_ONLY_PORT, tmp_path, EXPORTER_CONFIG=str(path))
    try:
        assert_nothing_fetched(f"http://127.0.0.1:{INTERCEPT_ONLY_PORT}", outside)
        assert "Blocked a request from the page" in process.log_path.read_text()
    finally:
        process.stop()


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("GET", "/index.html"), ("GET", "/js/main.js"), ("POST", "/version/1.2.3"), ("OPTIONS", "/")],
)
def test_only_render_and_health_are_served(exporter, method, path):
    response = requests.request(method, exporter + path, headers={"Origin": "http://evil.example"}, timeout=10)
    assert response.status_code == 404
    assert "access-control-allow-origin" not in response.headers
    assert requests.get(exporter + "/health", timeout=10).json()["status"] == "OK"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "png", "infile": chart(), "callback": "function(){}"}, "callback"),
        ({"type": "png", "infile": chart(), "customCode": "1"}, "customCode"),
        ({"type": "png", "infile": chart(), "outfile": "/tmp/x.png"}, "outfile"),
        ({"type": "png", "infile": json.dumps(chart())}, "infile"),
        ({"type": "pdf", "infile": chart()}, "type"),
        ({"type": "png", "infile": chart(), "width": 1e9}, "width"),
    ],
)
def test_fields_the_render_stage_does_not_send_are_refused_by_name(exporter, body, field):
    response = render(exporter, body)
    assert response.status_code == 400
    assert field in response.json()["message"]
    assert "stack" not in response.json()


def test_a_form_body_is_refused(exporter):
    response = requests.post(exporter + "/", data={"type": "png", "infile": json.dumps(chart())}, timeout=10)
    assert response.status_code == 415


# --- issue 10.5: no Chromium outlives its export server ---------------------------------------


def browsers_using(profile: Path) -> list[int]:
    marker = f"--user-data-dir={profile}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_stopping_the_server_by_any_signal_leaves_no_chromium(tmp_path, sig):
    process = start_exporter(f"exporter-signal-{sig.name}", SIGNAL_PORT, tmp_path)
    profile = tmp_path / f"profile-{SIGNAL_PORT}"
    try:
        # A render makes sure the page (a renderer process) exists too.
        assert render(f"http://127.0.0.1:{SIGNAL_PORT}", {"type": "png", "infile": chart()}).status_code == 200
        assert browsers_using(profile), "Chromium should be running"
        # deploy/run and start.sh exec: the process is node itself; only it gets the signal.
        os.kill(process.popen.pid, sig)
        process.popen.wait(20)
        wait_until(lambda: not browsers_using(profile), 10, f"Chromium gone after {sig.name}")
    finally:
        process.kill()
        for pid in browsers_using(profile):  # only this test's browsers (its own profile)
            os.kill(pid, signal.SIGKILL)

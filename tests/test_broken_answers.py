"""An answer broken off mid-body is a transient failure, retried like an unreachable service.

A real HTTP server on 127.0.0.1 (a thread with a socket) answers the headers and part of
the body, then closes the connection; the real clients (requests, urllib3) read it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from pipeline import clients, settings
from pipeline.errors import TransientFailure

CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"40\r\n"  # a chunk of 64 bytes announced, 16 sent, then the connection closes
    b'{"points": [[1.0'
)
SHORT = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 4096\r\n\r\n\x89PNG\r\n\x1a\n"
BROKEN_GZIP = b"\x1f\x8b" + b"not a gzip stream" * 4  # the magic number, then garbage
GARBLED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
    + f"Content-Length: {len(BROKEN_GZIP)}\r\n\r\n".encode()
    + BROKEN_GZIP
)


def _read_request(conn: socket.socket) -> None:
    """Read one request (headers and its Content-Length body) so the client is not reset early."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


@pytest.fixture
def broken_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """A server that answers every connection with ``request.param``'s bytes, then closes it."""
    answer: bytes = request.param
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                _read_request(conn)
                conn.sendall(answer)
                conn.shutdown(socket.SHUT_RDWR)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


ANSWERS = pytest.mark.parametrize(
    "broken_server", [CHUNKED, SHORT, GARBLED], ids=["chunked-cut", "content-length-cut", "gzip-garbled"], indirect=True
)


@ANSWERS
def test_points_answer_broken_off_is_transient_and_names_datagen(monkeypatch, broken_server: str) -> None:
    monkeypatch.setattr(settings, "DATAGEN_URL", broken_server)
    with pytest.raises(TransientFailure, match=f"datagen at {broken_server}/api/v1/points"):
        clients.fetch_points("t", 1.0, 1.0, 700)


@ANSWERS
def test_render_answer_broken_off_is_transient_and_names_the_export_server(broken_server: str) -> None:
    with pytest.raises(TransientFailure, match=f"export server at {broken_server}/") as failure:
        clients.render_png(broken_server, {"series": []}, 800, 400)
    assert failure.value.retry_after is None

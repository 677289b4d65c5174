"""What publisher confirms cost: persistent messages to a durable queue, with and without
waiting for RabbitMQ's confirm of each (``confirm_publish``, pipeline.celery), side by side.

A chart's chain publishes three messages (points, render, persist), each through the same
kind of publish. Run: ``.venv/bin/python -m tests.bench_confirms [--messages 3000]``
(deploy/bench.sh runs it on the benchmark's virtual host).
"""

from __future__ import annotations

import argparse
import os
import time

from kombu import Connection, Exchange, Queue

# The benchmark's own virtual host (deploy/bench.sh: TEST_SLOT 9), as the test settings name it.
_SLOT = int(os.environ.get("TEST_SLOT", "9"))
BROKER = os.environ.get("CELERY_BROKER_URL", f"amqp://guest:guest@127.0.0.1:5672/function_dashboard_test{_SLOT or ''}")
BODY = {"job": "x" * 600}  # about the size of a chain's first message


def publish_rate(confirm: bool, count: int) -> float:
    """Messages per second, ``count`` persistent messages on a durable queue (deleted after)."""
    exchange = Exchange("bench-confirms", type="direct", durable=True)
    queue = Queue(f"bench-confirms-{int(confirm)}", exchange, routing_key="bench", durable=True)
    with Connection(BROKER, transport_options={"confirm_publish": confirm}) as connection:
        producer = connection.Producer()
        queue(connection.default_channel).declare()
        started = time.perf_counter()
        for _ in range(count):
            producer.publish(BODY, exchange=exchange, routing_key="bench", delivery_mode=2, serializer="json")
        seconds = time.perf_counter() - started
        queue(connection.default_channel).delete()
    return count / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    count = parser.parse_args().messages
    without = publish_rate(False, count)
    confirmed = publish_rate(True, count)
    print(f"{count} persistent messages: without confirms {without:,.0f}/s, with confirms {confirmed:,.0f}/s;")
    print(f"ratio {confirmed / without:.2f}; per chart (3 messages) {3e3 / confirmed:.2f} ms with confirms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Metrics and alerts on real services (README, "Operating it").

A PostgreSQL, Redis and RabbitMQ of their own on side ports (the RabbitMQ node with its
``rabbitmq_prometheus`` plugin), the admin, datagen, two export servers and the three
workers started by ``deploy/run`` with a ``METRICS_PORT`` each, and a real Prometheus
(Debian's, unpacked by ``make test`` into var/prometheus) scraping every one of them each
second with the project's alert rules. A batch of N rows of which k fail is refreshed
through the admin; Prometheus' own answers must count it exactly. An export server killed
is seen down in the scrape and its alert rule goes pending; promtool checks the rules and
runs their unit tests (the firing after ``for:``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
import requests

from tests.sideservices import SideServices
from tests.stack import ROOT, Stack, http_ok, login, wait_until

SLOT = int(os.environ.get("TEST_SLOT", "0"))
BASE = 18000 + 100 * SLOT + 30
USER, PASSWORD = "metrics", "metrics-pw-for-tests-1"
PROMETHEUS = ROOT / "var" / "prometheus" / "usr" / "bin" / "prometheus"
PROMTOOL = ROOT / "var" / "prometheus" / "usr" / "bin" / "promtool"
RULES = ROOT / "deploy" / "prometheus"

# The METRICS_PORT of each process, and Prometheus' own port.
METRICS = {
    "admin": BASE + 14,
    "datagen": BASE + 15,
    "worker-points": BASE + 16,
    "worker-render": BASE + 17,
    "worker-persist": BASE + 18,
    "exporter1": BASE + 19,
    "exporter2": BASE + 20,
}
PROMETHEUS_PORT = BASE + 21
RABBITMQ_METRICS_PORT = BASE + 22

ENV = {
    "DJANGO_SETTINGS_MODULE": "dashboard.settings",
    "DJANGO_DEBUG": "true",
    "DJANGO_SECRET_KEY": "metrics-only-secret-key",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "DJANGO_SUPERUSER_USERNAME": USER,
    "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
    "ADMIN_PORT": str(BASE + 10),
    "ADMIN_WORKERS": "2",
    "ADMIN_THREADS": "4",
    "DATAGEN_PORT": str(BASE + 11),
    "DATAGEN_URL": f"http://127.0.0.1:{BASE + 11}",
    "DATAGEN_WORKERS": "2",
    "EXPORTER_URLS": f"http://127.0.0.1:{BASE + 12},http://127.0.0.1:{BASE + 13}",
    "POINTS_CONCURRENCY": "2",
    "RENDER_CONCURRENCY": "2",
    "PERSIST_CONCURRENCY": "2",
    "PIPELINE_HTTP_TIMEOUT": "10",
    "CELERY_LOG_LEVEL": "INFO",
}

pytestmark = [pytest.mark.stack]


@dataclass
class Observed:
    side: SideServices
    stack: Stack
    prometheus: subprocess.Popen
    admin: requests.Session
    url: str

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = psycopg2.connect(host="127.0.0.1", port=self.side.pg_port, user="postgres", dbname="postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def promql(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Prometheus' answer to an instant query: value by label set (``__name__`` left out)."""
        answer = requests.get(
            f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query", params={"query": expr}, timeout=5
        ).json()
        assert answer["status"] == "success", answer
        return {
            tuple(sorted((k, v) for k, v in item["metric"].items() if k != "__name__")): float(item["value"][1])
            for item in answer["data"]["result"]
        }

    def value(self, expr: str) -> float | None:
        """The one value of a query that aggregates to a single series; None when it has none."""
        result = self.promql(expr)
        assert len(result) <= 1, (expr, result)
        return next(iter(result.values()), None)

    def all_up(self) -> bool:
        """Every target (7 processes and RabbitMQ's plugin) scraped and up; raises naming the others."""
        up = self.promql("up")
        down = [dict(labels) for labels, value in up.items() if value != 1]
        if len(up) != 8 or down:
            raise AssertionError(f"{len(up)} targets, down: {down}")
        return True

    def wait_scraped_since(self, moment: float, timeout: float = 30) -> None:
        """Until every target's latest scrape started after ``moment`` (unix seconds): the counters
        Prometheus holds are then what each process had at that moment or later, all of them."""
        try:
            wait_until(lambda: (self.value("min(timestamp(up))") or 0) > moment, timeout, "every target scraped")
        except TimeoutError:
            oldest = self.value("min(timestamp(up))")
            raise AssertionError(f"a target not scraped since {moment:.3f} (oldest scrape {oldest})") from None

    def wait_answer(self, expr: str, expected: dict, timeout: float = 30) -> dict:
        """Until the query answers ``expected`` exactly (a counter may be one scrape behind
        another process's); the answer, or an AssertionError naming the last one."""
        try:
            wait_until(lambda: self.promql(expr) == expected, timeout, expr)
        except TimeoutError:
            raise AssertionError(f"{expr}: {self.promql(expr)} after {timeout} s, expected {expected}") from None
        return expected

    def wait_value(self, expr: str, expected: float, timeout: float = 30) -> None:
        wait_until(lambda: self.value(expr) == expected, timeout, f"{expr} == {expected} (last {self.value(expr)})")


def prometheus_config(path: Path) -> Path:
    def job(name: str, *ports: int) -> str:
        targets = ", ".join(f"'127.0.0.1:{port}'" for port in ports)
        return f"  - {{job_name: {name}, static_configs: [{{targets: [{targets}]}}]}}\n"

    text = (
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{RULES / 'alerts.yml'}']\n"
        "scrape_configs:\n"
        + job("admin", METRICS["admin"])
        + job("datagen", METRICS["datagen"])
        + "".join(job(f"worker-{q}", METRICS[f"worker-{q}"]) for q in ("points", "render", "persist"))
        + job("exporter", METRICS["exporter1"], METRICS["exporter2"])
        + "  - job_name: rabbitmq\n"
        "    metrics_path: /metrics/detailed\n"
        "    params: {family: [queue_coarse_metrics]}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{RABBITMQ_METRICS_PORT}']}}]\n"
    )
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def observed() -> Iterator[Observed]:
    assert PROMETHEUS.exists(), "Prometheus is missing: deploy/test.sh installs it (ensure_prometheus)"
    side = SideServices(BASE, rabbitmq_metrics_port=RABBITMQ_METRICS_PORT)
    stack = prometheus = None
    try:
        side.start()
        env = {**os.environ, **ENV, **side.env(), "METRICS_DIR": str(side.dir / "metrics")}
        subprocess.run([str(ROOT / "deploy" / "run"), "bootstrap"], env=env, check=True, capture_output=True)
        stack = Stack(env, extra=("admin",))
        for process in stack.processes:
            process.env = {**process.env, "METRICS_PORT": str(METRICS[process.name])}
        stack.start()
        config = prometheus_config(side.dir / "prometheus.yml")
        log = (side.dir / "prometheus.log").open("wb")
        prometheus = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={side.dir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{ENV['ADMIN_PORT']}"
        found = Observed(side, stack, prometheus, login(url, USER, PASSWORD), url)
        wait_until(lambda: http_ok(f"http://127.0.0.1:{PROMETHEUS_PORT}/-/ready"), 60, "Prometheus")
        # Every target scraped and up (8 processes and RabbitMQ's plugin).
        wait_until(found.all_up, 60, "every target up")
        yield found
    except BaseException:
        if stack is not None:
            print(stack.logs())
        raise
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(20)
        if stack is not None:
            stack.stop()
        side.close()


def make_rows(observed: Observed, expressions: list[str]) -> list[int]:
    ids = []
    for expression in expressions:
        (row,) = observed.query(
            "INSERT INTO functions_function"
            " (expression, dt, interval, created_at, state, error, error_code, error_params, trace)"
            " VALUES (%s, 1, 1, now(), 'done', '', '', '{}', '{}') RETURNING id",
            (expression,),
        )
        ids.append(row[0])
    return ids


def refresh(observed: Observed, ids: list[int]) -> None:
    response = observed.admin.post(
        observed.url + "/admin/functions/function/",
        data={
            "action": "refresh",
            "_selected_action": ids,
            "index": 0,
            "csrfmiddlewaretoken": observed.admin.cookies["csrftoken"],
        },
        headers={"Referer": observed.url},
        timeout=60,
    )
    assert response.ok, response.text[:500]


def settle(observed: Observed, ids: list[int]) -> dict[int, tuple[str, str]]:
    def settled() -> dict[int, tuple[str, str]] | None:
        rows = observed.query(
            "SELECT id, state, error, run_id = result_run FROM functions_function WHERE id = ANY(%s)", (ids,)
        )
        final = len(rows) == len(ids) and all(state != "queued" and same for _, state, _, same in rows)
        return {pk: (state, error) for pk, state, error, _ in rows} if final else None

    return wait_until(settled, 120, f"{len(ids)} rows to settle", poll=0.5)


N, K = 8, 2


def test_a_batch_of_n_rows_with_k_failing_is_counted_exactly_in_a_real_scrape(observed):
    o = observed
    presets = ["sin(t)", "t + 2/t", "cos(t / 3600)", "t*t + 2/t"]
    ids = make_rows(o, ["1/(t - t)"] * K + [presets[i % len(presets)] for i in range(N - K)])
    refresh(o, ids)
    rows = settle(o, ids)
    assert sorted(state for state, _ in rows.values()) == ["done"] * (N - K) + ["failed"] * K
    assert all("division by zero" in error for state, error in rows.values() if state == "failed"), rows

    # Prometheus scrapes each target every second, each on its own beat: once every target has been
    # scraped since the batch settled, every counter holds the whole batch (and stays there).
    o.wait_scraped_since(time.time())
    o.wait_value('sum(pipeline_runs_finished_total{outcome="done"})', N - K)
    o.wait_value('sum(pipeline_runs_finished_total{outcome="failed", cause="math_error"})', K)
    outcomes = o.wait_answer(
        "sum by (stage, outcome, cause) (pipeline_stage_outcomes_total)",
        {  # (Prometheus drops an empty label: a done outcome has no cause)
            (("outcome", "done"), ("stage", "points")): N - K,
            (("cause", "math_error"), ("outcome", "failed"), ("stage", "points")): K,
            (("outcome", "done"), ("stage", "render")): N - K,
            (("outcome", "done"), ("stage", "persist")): N,
        },
    )
    # Each histogram counted one observation per stage that worked (render: the N - K drawn).
    for metric in ("pipeline_stage_run_seconds_count", "pipeline_stage_wait_seconds_count"):
        o.wait_answer(
            f"sum by (stage) ({metric})",
            {(("stage", "points"),): N, (("stage", "render"),): N - K, (("stage", "persist"),): N},
        )
    # datagen: N requests for points, N - K statements that returned (K raised division by zero).
    o.wait_value('sum(datagen_request_seconds_count{view="points", status="200"})', N - K)
    o.wait_value('sum(datagen_request_seconds_count{view="points", status="422"})', K)
    o.wait_value("sum(datagen_samples_count)", N - K)
    o.wait_value("sum(datagen_statement_seconds_count)", N - K)
    # The export servers' own metrics: N - K exports answered 200, spread over both, none in flight.
    o.wait_value('sum(exporter_request_seconds_count{status="200"})', N - K)
    o.wait_value("sum(exporter_requests_in_flight)", 0)
    assert o.value('sum(exporter_pool_resources{state="max"})') == 4  # two servers, two pages each
    o.wait_value("sum(pipeline_export_requests_in_flight)", 0)
    # The admin timed the Refresh POST; RabbitMQ's plugin shows each stage queue, drained.
    assert o.value('sum(admin_request_seconds_count{view="admin:functions_function_changelist", method="POST"})') >= 1
    depths = o.promql('rabbitmq_detailed_queue_messages_ready{queue=~"points|render|persist"}')
    assert sorted(dict(labels)["queue"] for labels in depths) == ["persist", "points", "render"], depths
    assert set(depths.values()) == {0.0}
    assert o.value("pipeline_runs_in_flight") == 0
    print(
        "\nscrape after the batch (N = 8, K = 2):",
        *(f"  {dict(labels)} {value:g}" for labels, value in sorted(outcomes.items())),
        sep="\n",
    )


def test_the_backlog_gauges_read_postgresql_at_each_scrape(observed):
    o = observed
    (row,) = make_rows(o, ["sin(t)"])
    o.query(
        "INSERT INTO functions_run (id, function_id, expression, dt, interval, queued_at, sends, state)"
        " VALUES (gen_random_uuid(), %s, 'sin(t)', 1, 1, now() - interval '100 seconds', 0, 'queued')",
        (row,),
    )
    o.query(
        "UPDATE functions_function SET refresh_every = 60, next_refresh_at = now() - interval '300 seconds'"
        " WHERE id = %s",
        (row,),
    )
    try:
        o.wait_value("pipeline_runs_in_flight", 1)
        assert o.value("pipeline_runs_unsent") == 1
        assert o.value("pipeline_oldest_queued_run_age_seconds") >= 100
        assert o.value("pipeline_schedules_due") == 1
        assert o.value("pipeline_schedules_behind_seconds") >= 300
        assert o.value("pipeline_backlog_up") == 1
    finally:
        o.query("DELETE FROM functions_run WHERE function_id = %s", (row,))
        o.query("UPDATE functions_function SET refresh_every = NULL, next_refresh_at = NULL WHERE id = %s", (row,))
    o.wait_value("pipeline_runs_in_flight", 0)
    assert o.value("pipeline_oldest_queued_run_age_seconds") == 0


def test_an_export_server_killed_is_seen_down_and_its_alert_rule_goes_pending(observed):
    o = observed
    killed = o.stack.exporters[1]
    instance = f"127.0.0.1:{METRICS['exporter2']}"
    assert o.value(f'up{{job="exporter", instance="{instance}"}}') == 1
    killed.signal_group(signal.SIGKILL)
    killed.popen.wait(10)
    o.wait_value(f'up{{job="exporter", instance="{instance}"}}', 0)
    # The rule sees it at once; it fires after its `for: 1m` (promtool's unit test below proves that part).
    o.wait_value(f'count(ALERTS{{alertname="ExportServerDown", alertstate="pending", instance="{instance}"}})', 1)
    assert o.value('count(up{job="exporter"} == 1)') == 1  # the other one is still up


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PROMTOOL), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_the_alert_rules_are_valid_and_pass_their_unit_tests():
    checked = promtool("check", "rules", "alerts.yml", cwd=RULES)
    assert checked.returncode == 0 and "SUCCESS: 6 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "alerts.test.yml", cwd=RULES)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_promtool_refuses_an_expectation_the_rules_do_not_meet(tmp_path):
    """The unit tests can fail: expecting ExportServerDown before its minute is refused."""
    shutil.copy(RULES / "alerts.yml", tmp_path / "alerts.yml")
    text = (RULES / "alerts.test.yml").read_text()
    early = text.replace("      - eval_time: 90s\n        alertname: ExportServerDown", "      - eval_time: 50s\n"
                         "        alertname: ExportServerDown", 1)  # fmt: skip
    assert early != text
    (tmp_path / "alerts.test.yml").write_text(early)
    tested = promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert tested.returncode != 0 and "ExportServerDown" in tested.stdout + tested.stderr


def test_cause_labels_stay_bounded():
    from pipeline.metrics import cause_label

    assert cause_label("math_error") == "math_error"
    assert cause_label("") == ""
    assert cause_label(None) == ""
    assert cause_label("'; DROP TABLE x; --") == "other"
    assert cause_label("x" * 41) == "other"
    assert cause_label("Timeout") == "other"

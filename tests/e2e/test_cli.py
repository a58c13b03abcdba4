"""`spawn-monitor` as operators run it: the console script, as a subprocess, against the
local stack (SPEC §11). Arrays are driven the way workers drive them: rows written to
the progress table through the AWS API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import pytest

from tests.conftest import load_event
from tests.contract import check, response_schema
from tests.e2e.conftest import Stack, eventually, free_port, put_rows, start_stack
from tests.e2e.test_local_stack import alarms_of, launch, running

pytestmark = pytest.mark.e2e
SCRIPT = Path(sys.executable).parent / "spawn-monitor"


def environment(stack: Stack, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPAWN_MONITOR"))},
        "SPAWN_MONITOR_ENDPOINT": stack.api_endpoint,
        "AWS_ENDPOINT_URL": stack.aws_endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "e2e",
        "AWS_SECRET_ACCESS_KEY": "e2e",
        "COLUMNS": "120",
        "NO_COLOR": "1",
        **extra,
    }


def cli(stack: Stack, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - this checkout's console script
        [str(SCRIPT), *args],
        env=environment(stack, **extra),
        capture_output=True,
        text=True,
        timeout=90,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("spawn-monitor")
    return lines[0]


def write_rows(stack: Stack, array_id: str, statuses: list[str], message: str = "") -> None:
    """Rows of 3 tasks each, by status: a running worker has done 1 of them."""
    rows = [(s, 1 if s == "running" else 3, 3, None) for s in statuses]
    put_rows(stack, array_id, rows, message)


def summarised(stack: Stack, array_id: str, reported: int) -> None:
    def seen() -> bool:
        status, body = stack.get(f"/arrays/{array_id}/progress")
        workers = body.get("workers", {}) if status == 200 else {}
        return sum(workers.get(s, 0) for s in ("running", "completed", "failed")) == reported

    eventually(seen, timeout=30)


@pytest.mark.parametrize(
    ("array_id", "final", "status", "banner"),
    [
        ("watchok-20261127-0a0a0a", ["completed"] * 4, 0, "finished"),
        ("watchbad-20261127-0b0b0b", ["completed"] * 3 + ["failed"], 1, "ended with failures"),
    ],
)
def test_watch_follows_an_array_until_it_ends_and_exits_with_its_outcome(
    stack: Stack, array_id: str, final: list[str], status: int, banner: str
) -> None:
    write_rows(stack, array_id, ["running"] * 4)
    summarised(stack, array_id, 4)
    watch = subprocess.Popen(  # noqa: S603
        [str(SCRIPT), "watch", array_id, "--interval", "0.2"],
        env=environment(stack),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    write_rows(stack, array_id, final)
    out, err = watch.communicate(timeout=60)
    assert watch.returncode == status, (out, err)
    assert banner in out
    assert f"completed {final.count('completed')}" in out
    assert "tasks 12/12 (100.0 %)" in out
    assert "finished at " in out
    assert "Traceback" not in err


def test_watch_once_prints_one_frame_of_a_running_array(stack: Stack) -> None:
    array_id = "once-20261127-0c0c0c"
    write_rows(stack, array_id, ["running", "running", "completed"], message="[red]markup[/red]")
    summarised(stack, array_id, 3)
    result = cli(stack, "watch", array_id, "--once")
    assert result.returncode == 0, result.stderr
    frame = result.stdout
    assert array_id in frame
    assert "completed 1" in frame
    assert "running 2" in frame
    # Tasks, not workers: 1 + 1 + 3 of 3 + 3 + 3 done.
    assert "55.6%" in frame
    assert "tasks 5/9 (55.6 %)" in frame
    assert "ETA" in frame
    assert "[red]markup[/red]" in frame  # a worker's text is shown as written
    assert "Recent updates" in frame


def test_ctrl_c_stops_watch_with_130(stack: Stack) -> None:
    array_id = "sigint-20261127-0d0d0d"
    write_rows(stack, array_id, ["running"])
    summarised(stack, array_id, 1)
    # A terminal-like console draws the first frame at once, so we know it is watching.
    watch = subprocess.Popen(  # noqa: S603
        [str(SCRIPT), "watch", array_id, "--interval", "0.5"],
        env=environment(stack, TTY_COMPATIBLE="1", TTY_INTERACTIVE="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watch.stdout is not None
    first = ""
    while array_id not in first:
        line = watch.stdout.readline()
        assert line, "watch ended before drawing a frame"
        first += line
    watch.send_signal(signal.SIGINT)
    _, err = watch.communicate(timeout=30)
    assert watch.returncode == 130
    assert "Traceback" not in err


def test_json_output_is_the_apis_shape_with_every_page_joined(stack: Stack) -> None:
    array_id = "json-20261127-0e0e0e"
    write_rows(stack, array_id, ["completed"] * 120 + ["failed"] * 5 + ["running"] * 5)
    summarised(stack, array_id, 130)
    sns = stack.client("sns")
    topic = next(
        t["TopicArn"]
        for t in sns.list_topics()["Topics"]
        if t["TopicArn"].endswith(":spawn-alerts")
    )
    # The sample alarm, dated now: the stack is shared, and other tests' alerts are newer
    # than the sample's own January date.
    sample = json.loads(
        load_event("sns-alarm-notification-alarm.json")["Records"][0]["Sns"]["Message"]
    )
    sample["StateChangeTime"] = (datetime.now(UTC) + timedelta(seconds=2)).strftime(
        "%Y-%m-%dT%H:%M:%S.%f"
    )[:-3] + "+0000"
    sns.publish(TopicArn=topic, Subject="ALARM", Message=json.dumps(sample))
    sample_name = "spawn-instance-i-0abcd1234ef567890-status"
    eventually(
        lambda: (
            [a["alarm_name"] for a in stack.get("/alerts?kind=alarm&limit=1")[1]["alerts"]]
            == [sample_name]
        ),
        timeout=10,
    )

    def output(*args: str) -> Any:
        result = cli(stack, *args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    workers = output("workers", array_id)
    check(workers, response_schema("/arrays/{array_id}/workers", 200))
    assert [w["task_index"] for w in workers["workers"]] == list(range(130))  # two pages
    assert workers["next"] is None
    failed = output("workers", array_id, "--status", "failed")
    assert [w["task_index"] for w in failed["workers"]] == list(range(120, 125))
    arrays = output("arrays")
    check(arrays, response_schema("/arrays", 200))
    assert array_id in {a["array_id"] for a in arrays["arrays"]}
    check(output("fleet"), response_schema("/fleet", 200))
    alerts = output("alerts", "--kind", "alarm", "--limit", "5")
    check(alerts, response_schema("/alerts", 200))
    assert alerts["alerts"][0]["alarm_name"] == "spawn-instance-i-0abcd1234ef567890-status"
    check(output("alerts", "--limit", "100"), response_schema("/alerts", 200))


def test_alerts_show_both_kinds_and_the_filters_narrow_them(stack: Stack) -> None:
    array_id = "alerts-20261204-0c0c0c"
    write_rows(stack, array_id, ["completed"] * 3)
    summarised(stack, array_id, 3)
    query = f"/alerts?kind=system&array_id={array_id}"
    eventually(lambda: stack.get(query)[1]["alerts"], timeout=10)
    sample = load_event("sns-alarm-notification-alarm.json")["Records"][0]["Sns"]
    stack.client("sns").publish(
        TopicArn="arn:aws:sns:us-east-1:123456789012:spawn-alerts",
        Subject="ALARM",
        Message=sample["Message"],
    )
    eventually(lambda: stack.get("/alerts?kind=alarm")[1]["alerts"], timeout=10)

    result = cli(
        stack,
        "alerts",
        "--kind",
        "system",
        "--event-type",
        "array_finished",
        "--array",
        array_id,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)["alerts"]
    assert (entry["kind"], entry["event_type"], entry["array_id"]) == (
        "system",
        "array_finished",
        array_id,
    )
    assert entry["severity"] == "info"
    table = cli(stack, "alerts", "--limit", "100", COLUMNS="250")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert any("system" in line and "array_finished" in line and array_id in line for line in lines)
    assert any(" alarm " in line and "spawn-instance-" in line for line in lines)
    none = cli(stack, "alerts", "--severity", "critical", "--array", array_id, "--json")
    assert json.loads(none.stdout)["alerts"] == []
    refused = cli(stack, "alerts", "--event-type", "nope")
    assert "event_type must be one of" in one_line_error(refused)
    assert cli(stack, "alerts", "--kind", "everything").returncode == 2


def test_workers_status_lost_lists_the_lost_workers_and_watch_names_them(stack: Stack) -> None:
    array_id = "lostcli-20261203-0d0d0d"
    write_rows(stack, array_id, ["completed", "failed", "running", "running"], message="bye")
    dynamodb = stack.client("dynamodb")
    for index in (2, 3):  # the backend's lost mark, as the lifecycle writes it
        dynamodb.update_item(
            TableName="spawn-progress",
            Key={"array_id": {"S": array_id}, "task_index": {"N": str(index)}},
            UpdateExpression="SET lost_instance_id = instance_id, lost_cause = :c, lost_at = :t",
            ExpressionAttributeValues={
                ":c": {"S": "spot_interruption"},
                ":t": {"S": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
            },
        )

    def lost_counted() -> bool:
        status, body = stack.get(f"/arrays/{array_id}/progress")
        return status == 200 and body.get("workers", {}).get("lost") == 2

    eventually(lost_counted, timeout=30)
    result = cli(stack, "workers", array_id, "--status", "lost", "--json")
    assert result.returncode == 0, result.stderr
    assert [w["task_index"] for w in json.loads(result.stdout)["workers"]] == [2, 3]
    table = cli(stack, "workers", array_id, "--status", "lost")
    assert table.returncode == 0, table.stderr
    assert "lost" in table.stdout
    assert f"i-{2:017x}" in table.stdout
    ended = cli(stack, "watch", array_id, "--once")
    assert ended.returncode == 1, ended.stderr
    assert "Failed workers (1)" in ended.stdout
    assert "Lost workers (2)" in ended.stdout
    assert f"i-{3:017x}" in ended.stdout


def test_tables_show_what_the_json_holds(stack: Stack) -> None:
    array_id = "table-20261127-0f0f0f"
    write_rows(stack, array_id, ["completed", "failed", "running"])
    summarised(stack, array_id, 3)
    arrays = cli(stack, "arrays", COLUMNS="200")
    assert arrays.returncode == 0, arrays.stderr
    row = next(line for line in arrays.stdout.splitlines() if array_id in line)
    assert "77.8%" in row  # 3 + 3 + 1 of 9 tasks: the failed worker's are settled too
    assert "7/9" in row
    fleet = cli(stack, "fleet")
    assert "running" in fleet.stdout
    assert "spot interruptions" in fleet.stdout
    workers = cli(stack, "workers", array_id, "--status", "failed")
    assert "Workers of" in workers.stdout
    assert " failed " in workers.stdout


def test_the_stack_outputs_name_the_api(stack: Stack) -> None:
    template = {
        "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"ApiUrl": {"Value": stack.api_endpoint}, "Region": {"Value": "us-east-1"}},
    }
    stack.client("cloudformation").create_stack(
        StackName="cli-e2e", TemplateBody=json.dumps(template)
    )
    result = cli(stack, "arrays", "--json", "--stack", "cli-e2e", SPAWN_MONITOR_ENDPOINT="")
    assert result.returncode == 0, result.stderr
    assert "arrays" in json.loads(result.stdout)


# Errors: one line, exit 2, never a traceback ---------------------------------------------


def test_an_unreachable_endpoint(stack: Stack) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    line = one_line_error(cli(stack, "arrays", "--endpoint", closed))
    assert f"cannot reach the API at {closed}" in line


def test_an_unknown_array_is_named(stack: Stack) -> None:
    for command in (["watch", "nobody-20260101-abcdef", "--once"], ["workers", "nobody-x"]):
        line = one_line_error(cli(stack, *command))
        assert "is unknown (404)" in line


def test_a_malformed_id_is_the_apis_400(stack: Stack) -> None:
    for bad in ("-leading-dash", "has space", "a/b"):
        line = one_line_error(cli(stack, "watch", "--once", "--", bad))
        assert "bad request: array_id must be" in line
    usage = one_line_error(cli(stack, "watch", "--once"))
    assert "required: ARRAY_ID" in usage


def test_an_id_the_cli_must_encode_reaches_the_array(stack: Stack) -> None:
    # The CLI sends `:` as `%3A`; `chalice local`, like API Gateway, hands the path
    # parameter over still encoded, and the application decodes it once.
    array_id = "team:encoded-20261127-1a1a1a"
    write_rows(stack, array_id, ["running", "completed"])
    summarised(stack, quote(array_id, safe=""), 2)
    result = cli(stack, "watch", array_id, "--once")
    assert result.returncode == 0, result.stderr
    assert array_id in result.stdout
    assert "completed 1" in result.stdout
    workers = cli(stack, "workers", array_id, "--json")
    assert workers.returncode == 0, workers.stderr
    assert [w["task_index"] for w in json.loads(workers.stdout)["workers"]] == [0, 1]
    # What the operator typed already encoded is encoded again by the CLI (`%253A`),
    # decoded once by the API (`%3A`), and refused as malformed, never a 500.
    line = one_line_error(cli(stack, "watch", "--once", "--", quote(array_id, safe="")))
    assert "bad request: array_id must be" in line


def test_no_endpoint_and_no_stack(stack: Stack) -> None:
    line = one_line_error(cli(stack, "arrays", SPAWN_MONITOR_ENDPOINT=""))
    assert "cannot read stack spawn-fleet-monitor" in line
    assert "--endpoint" in line


class Forbidding(BaseHTTPRequestHandler):
    """API Gateway's answer to a rejected signature; remembers what it was sent."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        Forbidding.seen.append(dict(self.headers.items()))
        body = b'{"message": "The security token included in the request is invalid."}'
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def forbidding() -> Iterator[str]:
    # The local API enforces no IAM, so a 403 is what API Gateway would answer.
    server = HTTPServer(("127.0.0.1", 0), Forbidding)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_403_hints_at_credentials_and_region(stack: Stack, forbidding: str) -> None:
    Forbidding.seen.clear()
    result = cli(
        stack, "fleet", "--endpoint", forbidding, "--sign", "always", "--region", "eu-west-1"
    )
    line = one_line_error(result)
    assert "403 Forbidden" in line
    assert "security token included in the request is invalid" in line
    assert "credentials" in line
    assert "eu-west-1" in line
    [headers] = Forbidding.seen
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=e2e/"), (
        headers
    )  # signed with the caller's own credentials
    assert "/eu-west-1/execute-api/aws4_request" in headers["Authorization"]


# doctor ---------------------------------------------------------------------------------


def test_doctor_passes_on_a_healthy_stack_with_a_worker_reporting(stack: Stack) -> None:
    [instance] = launch(stack)
    running(stack, instance)
    eventually(lambda: len(alarms_of(stack, instance)) == 2, timeout=10)
    eventually(
        lambda: stack.client("cloudwatch").describe_alarms(AlarmNames=["spawn-fleet-unhealthy"])[
            "MetricAlarms"
        ]
    )
    # What a worker's kit publishes (spawn-report metric).
    stack.client("cloudwatch").put_metric_data(
        Namespace="Spawn/Workers",
        MetricData=[
            {
                "MetricName": "TasksCompleted",
                "Dimensions": [{"Name": "InstanceId", "Value": instance}],
                "Value": 1,
            }
        ],
    )
    result = cli(stack, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout
    assert "Estimated CloudWatch cost of this monitoring" in result.stdout
    [alarms] = [line for line in result.stdout.splitlines() if "instance alarms" in line]
    assert alarms.startswith("✔"), alarms


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own, for breaking."""
    with start_stack(tmp_path_factory.mktemp("scratch")) as running_stack:
        yield running_stack


def test_doctor_names_a_removed_table_and_alarm(scratch: Stack) -> None:
    cloudwatch = scratch.client("cloudwatch")
    eventually(
        lambda: cloudwatch.describe_alarms(AlarmNames=["spawn-fleet-unhealthy"])["MetricAlarms"]
    )
    healthy = cli(scratch, "doctor", "--json")
    assert healthy.returncode == 0, healthy.stdout
    assert json.loads(healthy.stdout)["ok"] is True

    scratch.client("dynamodb").delete_table(TableName="spawn-alert-history")
    cloudwatch.delete_alarms(AlarmNames=["spawn-fleet-unhealthy"])
    broken = cli(scratch, "doctor", "--json")
    assert broken.returncode == 1
    report = json.loads(broken.stdout)
    failed = {c["name"]: c for c in report["checks"] if c["status"] == "fail"}
    assert set(failed) == {"tables", "fleet alarms"}
    assert "spawn-alert-history" in failed["tables"]["detail"]
    assert "spawn-fleet-unhealthy" in failed["fleet alarms"]["detail"]
    assert all(c["fix"] for c in failed.values())
    text = cli(scratch, "doctor")
    assert text.returncode == 1
    assert "missing: spawn-alert-history" in text.stdout
    assert "fix: redeploy" in text.stdout
    assert "2 check(s) failed" in text.stdout

"""The local stack (SPEC §9): moto server, provisioned resources, routed events,
scheduled ticks, EMF → metrics, the HTTP API and, optionally, a simulated fleet.

Everything is driven through AWS APIs on the moto endpoint, the way AWS drives the
deployed functions: EventBridge rules match events with moto's own matcher and
deliver to SQS queues; this module polls those queues and invokes the handlers with
Lambda-shaped events and a Lambda-like context.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import socket
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from local import lambda_runtime
from local.emf import EmfStdout
from local.moto_serial import serialize_dynamodb
from local.provision import Provisioned, provision
from testkit.delivery import (
    ASYNC_RETRIES,
    batch_due,
    reported_failures,
    sqs_settle,
    stream_resume,
)

ROOT = Path(__file__).resolve().parent.parent
CHALICE_CONFIG = ROOT / ".chalice" / "config.json"
REGION = "us-east-1"
# The local stack hands an SQS batch to its function after at most this long.
LOCAL_BATCH_WINDOW_SECONDS = 0.5
# How long `stop` waits for the stack's threads (daemons: the process exits anyway).
STOP_SECONDS = 10.0
# moto has no CloudWatch quota; the demo need not wait at AWS's 3 calls a second. The
# local API has no IAM auth, so no caller identity: everything is visible (SPEC §7).
# moto lacks composite alarms, anomaly detectors and saved queries: the console setup
# skips those calls (and says so once). Finished arrays' dashboards go after 3 minutes.
LOCAL_DEFAULTS = {
    "ALARM_API_TPS": "50",
    "API_ISOLATION": "off",
    # moto has no Price List API and a fixed spot price table: the shipped snapshot prices.
    "PRICES_FROM": "snapshot",
    "CONSOLE_SKIP_CALLS": ",".join(
        (
            "PutCompositeAlarm",
            "PutAnomalyDetector",
            "DescribeAnomalyDetectors",
            "DeleteAnomalyDetector",
            "PutQueryDefinition",
            "DescribeQueryDefinitions",
            "DeleteQueryDefinition",
            # Nor has it the APIs of ALARM_MODE=fleet-query's precondition and contributors.
            "GetTelemetryEnrichmentStatus",
            "DescribeAlarmContributors",
        )
    ),
    "ARRAY_DASHBOARD_RETENTION_HOURS": "0.05",
    # The local lifecycle handles an event within a second or two, not a batching window
    # and a quota's wait: the reconciler leaves launches to it for 20 s, not 5 minutes.
    "RECONCILE_GRACE_SECONDS": "20",
    # A launch-failure alert waits 2 s for the burst, not a minute.
    "LAUNCH_FAILURE_ALERT_DELAY_SECONDS": "2",
}
# Scheduled functions run every tick, except these: the console setup runs once at
# start (before the API answers) and then at its own, slower pace; the Cost Explorer job
# daily, as deployed (moto has no ListCostAllocationTags: each call fails after retries).
RUN_AT_START = frozenset({"setup"})
LOCAL_INTERVAL_SECONDS = {"setup": 60.0, "billed_costs": 86400.0}

_current = threading.local()


class PortBusy(RuntimeError):
    """A port the stack needs is taken; the message names it and how to change it."""


@dataclass(frozen=True)
class StackConfig:
    aws_port: int = 5000
    api_port: int = 8000
    tick_seconds: float = 10.0
    simulate: bool = True
    stage: str = "dev"
    alarm_mode: str | None = None
    # A loopback port where `POST /schedules/NAME` runs a scheduled function now (tests);
    # None: no such port.
    control_port: int | None = None

    @classmethod
    def from_env(cls) -> StackConfig:
        env = os.environ
        try:
            config = cls(
                aws_port=int(env.get("SFM_AWS_PORT", "5000")),
                api_port=int(env.get("SFM_API_PORT", "8000")),
                tick_seconds=float(env.get("SFM_TICK_SECONDS", "10")),
                simulate=env.get("SFM_SIMULATE", "1") not in ("0", "false", "no", "off"),
                alarm_mode=env.get("SFM_ALARM_MODE") or None,
                control_port=int(env["SFM_CONTROL_PORT"]) if env.get("SFM_CONTROL_PORT") else None,
            )
        except ValueError as exc:
            raise SystemExit(f"local stack: bad SFM_* setting: {exc}") from None
        if not config.tick_seconds > 0:
            raise SystemExit("local stack: SFM_TICK_SECONDS must be a positive number")
        if config.alarm_mode not in (None, "per-instance", "fleet-query"):
            raise SystemExit("local stack: SFM_ALARM_MODE must be per-instance or fleet-query")
        return config


def check_port_free(port: int, variable: str) -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise PortBusy(
                f"port {port} on 127.0.0.1 is already in use; stop what holds it or set "
                f"{variable} to a free port (e.g. {variable}={port + 1} make run)"
            ) from None


def stage_environment(stage: str) -> dict[str, str]:
    """The environment variables `.chalice/config.json` gives the functions in `stage`."""
    config = json.loads(CHALICE_CONFIG.read_text())
    env = dict(config.get("environment_variables", {}))
    env.update(config.get("stages", {}).get(stage, {}).get("environment_variables", {}))
    return env


def function_name() -> str:
    return getattr(_current, "function", "")


def log(message: str) -> None:
    print(f"[local] {message}", flush=True)


@dataclass
class Function:
    """A handler of the Chalice app, invoked the way Lambda would."""

    name: str
    handler: Callable[[dict[str, Any], Any], Any]
    timeout: float = 60.0

    def invoke(self, event: dict[str, Any]) -> Any:
        context = lambda_runtime.LambdaContext(self.name, timeout_seconds=self.timeout)
        _current.function = self.name
        try:
            return self.handler(event, context)
        except Exception:
            # Lambda reports an unhandled error and the event source retries.
            log(f"function {self.name} failed:\n{traceback.format_exc()}")
            raise
        finally:
            _current.function = ""


@dataclass
class LocalStack:
    """Starts and stops everything; `start()` returns once `/health` can answer."""

    config: StackConfig = field(default_factory=StackConfig.from_env)
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    aws_endpoint: str = ""
    api_endpoint: str = ""
    control_endpoint: str = ""
    provisioned: Provisioned | None = None
    # The scheduled functions by name, each run at most once at a time.
    schedules: dict[str, Callable[[], Any]] = field(default_factory=dict)

    def start(self) -> None:
        check_port_free(self.config.aws_port, "SFM_AWS_PORT")
        check_port_free(self.config.api_port, "SFM_API_PORT")
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        serialize_dynamodb()  # moto's transactions race its other writes (local.moto_serial)
        self._moto = ThreadedMotoServer(
            ip_address="127.0.0.1", port=self.config.aws_port, verbose=False
        )
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.aws_endpoint = f"http://{host}:{port}"
        self._configure_environment()
        self.session = boto3.Session(region_name=REGION)
        self.provisioned = provision(self.session)
        self._install_emf_bridge()
        module = importlib.import_module("app")
        self._install_spot_market()
        self._wire(module)
        self._serve_api(module.app)
        if self.config.control_port is not None:
            self._serve_control()
        if self.config.simulate:
            self._start_simulator()

    def _configure_environment(self) -> None:
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self.aws_endpoint,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
                "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
            }
        )
        for key, value in {**stage_environment(self.config.stage), **LOCAL_DEFAULTS}.items():
            os.environ.setdefault(key, value)
        if self.config.alarm_mode:
            os.environ["ALARM_MODE"] = self.config.alarm_mode

    def _install_emf_bridge(self) -> None:
        cloudwatch = self.session.client("cloudwatch")

        def put(namespace: str, data: list[dict[str, Any]]) -> None:
            try:
                cloudwatch.put_metric_data(Namespace=namespace, MetricData=data)  # type: ignore[arg-type]
            except Exception as exc:  # a bad EMF line must not take the function down
                log(f"EMF line could not become metrics: {exc}")

        def prefix() -> str:
            name = function_name()
            return f"[{name}] " if name else ""

        self._stdout = sys.stdout
        sys.stdout = EmfStdout(self._stdout, put, prefix)
        # Library chatter (moto's request log, botocore's endpoint notes) stays quiet;
        # the functions' own loggers are configured by the app at import.
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")

    # Event sources -----------------------------------------------------------------

    def _wire(self, module: Any) -> None:
        from chalice.app import (
            CloudWatchEventConfig,
            ScheduledEventConfig,
            SNSEventConfig,
            SQSEventConfig,
        )

        chalice_config = json.loads(CHALICE_CONFIG.read_text())
        for source in module.app.event_sources:
            handler = getattr(module, source.handler_string.split(".", 1)[1])
            timeout = float(
                chalice_config.get("lambda_functions", {})
                .get(source.name, {})
                .get("lambda_timeout", chalice_config.get("lambda_timeout", 60))
            )
            function = Function(source.name, handler, timeout)
            if isinstance(source, SQSEventConfig):
                self._sqs_source(function, str(source.queue), source.batch_size)
            elif isinstance(source, CloudWatchEventConfig):
                self._rule_source(function, source.event_pattern)
            elif isinstance(source, SNSEventConfig):
                self._sns_source(function, source.topic)
            elif isinstance(source, ScheduledEventConfig):
                self._schedule(function)
            else:
                raise ValueError(f"local stack cannot drive {type(source).__name__}")
        self._wire_template_sources(module, chalice_config)

    def _wire_template_sources(self, module: Any, chalice_config: dict[str, Any]) -> None:
        """Event sources the merge template adds to Chalice-made functions (streams)."""
        assert self.provisioned is not None
        for function in module.app.pure_lambda_functions:
            logical = "".join(part.capitalize() for part in function.name.split("_"))
            overlay = self.provisioned.resources.get(logical, {})
            for source in overlay.get("Properties", {}).get("Events", {}).values():
                if source.get("Type") != "DynamoDB":
                    raise ValueError(f"{logical}: local stack cannot drive {source.get('Type')}")
                props = source["Properties"]
                table = props["Stream"]["Fn::GetAtt"][0]
                handler = getattr(module, function.handler_string.split(".", 1)[1])
                timeout = float(
                    chalice_config.get("lambda_functions", {})
                    .get(function.name, {})
                    .get("lambda_timeout", chalice_config.get("lambda_timeout", 60))
                )
                self._stream_source(
                    Function(function.name, handler, timeout),
                    self.provisioned.stream_arns[table],
                    int(props.get("BatchSize", 100)),
                    int(props.get("TumblingWindowInSeconds", 0)),
                )

    def _stream_source(
        self, function: Function, stream_arn: str, batch_size: int, window_seconds: int
    ) -> None:
        """Poll every shard of a DynamoDB stream from its start, as Lambda's mapping with
        TRIM_HORIZON does; a reported failure resumes the shard at that record. With a
        tumbling window the event names its shard, as Lambda's does."""
        streams = self.session.client("dynamodbstreams")

        def poll() -> None:
            iterators: dict[str, str | None] = {}
            while not self.stop_event.is_set():
                try:
                    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]
                    for shard in shards.get("Shards", []):
                        shard_id = shard["ShardId"]
                        if shard_id not in iterators:
                            iterators[shard_id] = streams.get_shard_iterator(
                                StreamArn=stream_arn,
                                ShardId=shard_id,
                                ShardIteratorType="TRIM_HORIZON",
                            )["ShardIterator"]
                    idle = True
                    for shard_id, iterator in list(iterators.items()):
                        if iterator is None:
                            continue
                        page = streams.get_records(ShardIterator=iterator, Limit=batch_size)
                        records: list[dict[str, Any]] = [dict(r) for r in page.get("Records", [])]
                        if not records:
                            iterators[shard_id] = page.get("NextShardIterator")
                            continue
                        idle = False
                        event = lambda_runtime.stream_event(
                            records, stream_arn, shard_id, window_seconds
                        )
                        failures: list[str] | None
                        try:
                            failures = reported_failures(function.invoke(event))
                        except Exception:  # logged by invoke; the whole batch is retried
                            failures = None
                        sequences = [r["dynamodb"]["SequenceNumber"] for r in records]
                        done = stream_resume(sequences, failures)
                        if done == len(records):
                            iterators[shard_id] = page.get("NextShardIterator")
                            continue
                        iterators[shard_id] = streams.get_shard_iterator(
                            StreamArn=stream_arn,
                            ShardId=shard_id,
                            ShardIteratorType="AT_SEQUENCE_NUMBER",
                            SequenceNumber=sequences[done],
                        )["ShardIterator"]
                        self.stop_event.wait(1.0)
                except Exception as exc:
                    if not self.stop_event.is_set():
                        log(f"stream poll for {function.name} failed: {exc}")
                    idle = True
                if idle:
                    self.stop_event.wait(0.5)

        self._spawn(function.name, poll)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _local_queue(self, name: str) -> tuple[str, str]:
        sqs = self.session.client("sqs")
        failed = sqs.create_queue(QueueName=f"sfm-local-{name}-failed")["QueueUrl"]
        failed_arn = sqs.get_queue_attributes(QueueUrl=failed, AttributeNames=["QueueArn"])
        # Lambda retries an async invocation twice, then gives up to its failure target.
        redrive = {
            "deadLetterTargetArn": failed_arn["Attributes"]["QueueArn"],
            "maxReceiveCount": ASYNC_RETRIES + 1,
        }
        url = sqs.create_queue(
            QueueName=f"sfm-local-{name}",
            Attributes={"VisibilityTimeout": "5", "RedrivePolicy": json.dumps(redrive)},
        )["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, arn["Attributes"]["QueueArn"]

    def _sqs_source(self, function: Function, queue: str, batch_size: int) -> None:
        sqs = self.session.client("sqs")
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        queue_arn = arn["Attributes"]["QueueArn"]

        def deliver(messages: list[dict[str, Any]]) -> set[str]:
            result = function.invoke(lambda_runtime.sqs_event(messages, queue_arn))
            return set(reported_failures(result))

        self._spawn(function.name, lambda: self._poll(url, batch_size, deliver))

    def _rule_source(self, function: Function, pattern: dict[str, Any]) -> None:
        url, arn = self._local_queue(function.name)
        events = self.session.client("events")
        rule = f"sfm-local-{function.name}"
        events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED")
        events.put_targets(Rule=rule, Targets=[{"Id": function.name, "Arn": arn}])

        def deliver(messages: list[dict[str, Any]]) -> set[str]:
            event = json.loads(messages[0]["Body"])
            # moto's SQS target drops the envelope's `account`, which AWS always sends.
            event.setdefault("account", lambda_runtime.ACCOUNT)
            function.invoke(event)
            return set()

        self._spawn(function.name, lambda: self._poll(url, 1, deliver))

    def _sns_source(self, function: Function, topic: str) -> None:
        url, arn = self._local_queue(function.name)
        sns = self.session.client("sns")
        topic_arn = topic if topic.startswith("arn:") else sns.create_topic(Name=topic)["TopicArn"]
        subscription = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
        subscription_arn = subscription["SubscriptionArn"]

        def deliver(messages: list[dict[str, Any]]) -> set[str]:
            envelope = json.loads(messages[0]["Body"])
            function.invoke(lambda_runtime.sns_event(envelope, subscription_arn))
            return set()

        self._spawn(function.name, lambda: self._poll(url, 1, deliver))

    def _schedule(self, function: Function) -> None:
        rule_arn = f"arn:aws:events:{REGION}:{lambda_runtime.ACCOUNT}:rule/{function.name}"
        interval = LOCAL_INTERVAL_SECONDS.get(function.name, self.config.tick_seconds)
        one_at_a_time = threading.Lock()

        def run() -> Any:
            with one_at_a_time:
                return function.invoke(lambda_runtime.scheduled_event(rule_arn))

        self.schedules[function.name] = run
        if function.name in RUN_AT_START:
            with contextlib.suppress(Exception):  # logged by invoke; the next run retries
                run()

        def tick() -> None:
            while not self.stop_event.wait(interval):
                with contextlib.suppress(Exception):
                    run()

        self._spawn(function.name, tick)

    def run_schedule(self, name: str) -> Any:
        """Run the scheduled function `name` now, as its timer would (and not at the same
        time as its timer's run); its result, or its error raised."""
        return self.schedules[name]()

    def _poll(
        self, url: str, batch_size: int, deliver: Callable[[list[dict[str, Any]]], set[str]]
    ) -> None:
        """Receive up to `batch_size` messages within the batch window, hand them over,
        and delete the ones the function did not report as failed."""
        sqs = self.session.client("sqs")
        while not self.stop_event.is_set():
            batch: list[dict[str, Any]] = []
            oldest = 0.0
            while not self.stop_event.is_set() and not batch_due(
                len(batch), batch_size, oldest, LOCAL_BATCH_WINDOW_SECONDS, time.monotonic()
            ):
                try:
                    received = sqs.receive_message(
                        QueueUrl=url,
                        MaxNumberOfMessages=min(10, batch_size - len(batch)),
                        # Long-poll for the first message, then gather within the window.
                        WaitTimeSeconds=0 if batch else 1,
                        AttributeNames=["All"],
                    ).get("Messages", [])
                except Exception as exc:
                    if not self.stop_event.is_set():
                        log(f"polling {url} failed: {exc}")
                    time.sleep(0.5)
                    continue
                if received and not batch:
                    oldest = time.monotonic()
                if not received and batch:
                    time.sleep(0.05)
                batch.extend(dict(m) for m in received)
            if not batch:
                continue
            failed: set[str] | None
            try:
                failed = deliver(batch)
            except Exception:  # Function.invoke has logged it
                failed = None  # the whole batch becomes visible again after the timeout
            done, _ = sqs_settle(batch, lambda m: m["MessageId"], failed)
            for start in range(0, len(done), 10):
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(done[start : start + 10])
                    ],
                )

    # HTTP API and simulation ----------------------------------------------------------

    def _serve_api(self, app: Any) -> None:
        from chalice.config import Config
        from chalice.local import create_local_server

        config = Config(
            chalice_stage=self.config.stage,
            config_from_disk=json.loads(CHALICE_CONFIG.read_text()),
        )
        # Said once here rather than warned on every request.
        warnings.filterwarnings("ignore", message="IAMAuthorizer is not a supported")
        log("IAM (SigV4) auth is enforced in deployed stages only, not by the local API")
        self._api = create_local_server(app, config, "127.0.0.1", self.config.api_port)
        host, port = self._api.server.server_address[:2]
        self.api_endpoint = f"http://{host}:{port}"
        self._spawn("http-api", self._api.server.serve_forever)

    def _serve_control(self) -> None:
        """`POST /schedules/NAME` runs that scheduled function now and answers once it has
        run: 200, 500 if it raised (logged by invoke), 404 for a name the app lacks;
        `GET /schedules` lists those that run every tick. Tests drive the schedules this
        way instead of waiting for their timers."""
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        stack = self

        class Control(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                """`GET /schedules`: the names of the functions that run every tick."""
                if self.path != "/schedules":
                    self._answer(404, {"error": f"nothing at {self.path}"})
                    return
                ticked = [n for n in stack.schedules if n not in LOCAL_INTERVAL_SECONDS]
                self._answer(200, {"every_tick": ticked})

            def do_POST(self) -> None:
                name = self.path.removeprefix("/schedules/")
                if not self.path.startswith("/schedules/") or name not in stack.schedules:
                    self._answer(404, {"error": f"no scheduled function at {self.path}"})
                    return
                try:
                    stack.run_schedule(name)
                except Exception as exc:
                    self._answer(500, {"ran": name, "error": str(exc)})
                    return
                self._answer(200, {"ran": name})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        assert self.config.control_port is not None
        self._control = ThreadingHTTPServer(("127.0.0.1", self.config.control_port), Control)
        host, port = self._control.server_address[:2]
        self.control_endpoint = f"http://{host!s}:{port}"
        self._spawn("control", self._control.serve_forever)

    def _install_spot_market(self) -> None:
        """Spot prices from `local.sim_prices` (moto's cannot be set), moved while the
        simulator runs; on-demand and EBS prices stay the shipped snapshot's."""
        from chalicelib.container import current
        from chalicelib.cost.prices import PriceBook
        from local.sim_prices import SpotMarket

        wiring = current()
        self.spot_market = SpotMarket()
        wiring.price_book = PriceBook(
            REGION,
            ec2=self.spot_market,  # type: ignore[arg-type]
            dynamodb=wiring.clients.dynamodb,
            table=wiring.settings.stats_table,
            clock=wiring.clock,
        )

    def _start_simulator(self) -> None:
        import random

        from local.simulator import FleetSimulator

        simulator = FleetSimulator(
            ec2=self.session.client("ec2"),
            events=self.session.client("events"),
            dynamodb=self.session.client("dynamodb"),
            sts=self.session.client("sts"),
            progress_table=os.environ["PROGRESS_TABLE"],
            rng=random.Random(),
            interruption_probability=0.005,
            alarm_mode=os.environ.get("ALARM_MODE", "per-instance"),
            launch_failures=True,
            logs=self.session.client("logs"),
        )
        self._spawn("simulator", lambda: simulator.run(self.stop_event, 2.0))

        def move_spot_prices() -> None:
            from datetime import UTC, datetime

            while not self.stop_event.wait(2.0):
                self.spot_market.step(datetime.now(UTC))

        self._spawn("spot-market", move_spot_prices)

    def stop(self) -> None:
        self.stop_event.set()
        with contextlib.suppress(Exception):
            self._api.server.shutdown()
        with contextlib.suppress(Exception):
            self._control.shutdown()
        # One deadline for all threads, not one each: a dozen busy ones cannot add up.
        deadline = time.monotonic() + STOP_SECONDS
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(Exception):
            self._moto.stop()
        if isinstance(sys.stdout, EmfStdout):
            sys.stdout = self._stdout

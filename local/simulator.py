"""A simulated spawn fleet for the local stack.

`make run` has no real EC2 fleet behind it, yet the monitor only makes sense when instances
come and go, workers report progress and spot capacity gets reclaimed. This module plays
both halves of that world against whatever AWS endpoint the boto3 clients it is given point
at (the moto server locally):

* the *spawn CLI and its workers*: it launches job arrays with spawn's tags (including
  `spawn:iam-user`, the launching principal's ARN from `sts:GetCallerIdentity`, as
  spawn writes it), and each worker writes its progress rows (SPEC section 4) with the
  workers' kit, `spawn_report`, as a Python worker would, so the local stack exercises
  the kit;
* *AWS itself*: it sends the EventBridge events EC2 would send on its own (state changes,
  spot interruption warnings, rebalance recommendations) to the default bus.

It deliberately talks to AWS only through the clients handed to it and imports nothing
from the application (`app`, `chalicelib`): the simulation must exercise the same public
contract a real fleet does, so it can never reach into the monitor's internals. The kit
is what real workers install, so it is fair game.
"""

from __future__ import annotations

import json
import random
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from spawn_report import Identity, Reporter, ReportError, Settings

from local import sim_launches
from local.sim_budget import TRAIN_COST_LIMIT_USD, cost_limit_tags
from local.sim_logs import WorkerLogs

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef
    from mypy_boto3_logs.client import CloudWatchLogsClient
    from mypy_boto3_sts.client import STSClient

__all__ = ["DEFAULT_ARRAYS", "ArrayPlan", "FleetSimulator"]

#: A Linux AMI that moto ships with in us-east-1, as spawn's workers run (moto marks
#: ami-12c6146b Windows, which the cost engine would price as Windows).
DEFAULT_IMAGE_ID = "ami-1e749f67"

#: PutEvents accepts at most 10 entries per call (EventBridge quota).
PUT_EVENTS_BATCH = 10

#: Share of workers that fail partway through their tasks.
FAILURE_PROBABILITY = 0.05

#: Chance that any one task a worker processes raises a (non-fatal) error.
TASK_ERROR_PROBABILITY = 0.01

#: Share of spot interruptions that are preceded by a rebalance recommendation; also the
#: per-step odds, relative to `interruption_probability`, of a recommendation on its own.
REBALANCE_SHARE = 0.5

#: Share of spot interruptions whose worker dies without a final report (it missed the
#: notice): its row stays `running` until the monitor marks it lost, so `make run`
#: shows lost workers. The rest report `failed` on the notice, as a spawn worker does.
LOST_SHARE = 0.5

STATE_CHANGE = "EC2 Instance State-change Notification"
SPOT_WARNING = "EC2 Spot Instance Interruption Warning"
REBALANCE = "EC2 Instance Rebalance Recommendation"
# ALARM_MODE=fleet-query: CloudWatch evaluates the query alarms (moto never does) and sends
# one event per contributor that changes state; the simulator sends them in its stead.
CONTRIBUTOR_CHANGE = "CloudWatch Alarm Contributor State Change"
FLEET_STATUS_ALARM = "spawn-fleet-status-check"
# Chance per step that a running instance starts failing its status check, and that a
# failing one recovers.
CHECK_FAILURE_PROBABILITY = 0.01
CHECK_RECOVERY_PROBABILITY = 0.3


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ArrayPlan:
    """One job array the simulator launches every round.

    `task_seconds` is roughly how long each member takes to finish all of its tasks
    (each worker's duration is jittered around it). `cost_limit_usd` is spawn's
    per-instance cap, tagged `spawn:cost-limit` (`local.sim_budget`).
    """

    name: str
    size: int
    instance_type: str
    spot: bool
    task_seconds: float
    cost_limit_usd: float | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("ArrayPlan.name must not be empty")
        if self.size < 1:
            raise ValueError(f"ArrayPlan.size must be >= 1, got {self.size}")
        if self.task_seconds <= 0:
            raise ValueError(f"ArrayPlan.task_seconds must be > 0, got {self.task_seconds}")
        if self.cost_limit_usd is not None and not self.cost_limit_usd > 0:
            raise ValueError(f"ArrayPlan.cost_limit_usd must be > 0, got {self.cost_limit_usd}")


#: Two arrays that keep a demo visibly busy with one step every ~2 s: a spot array that
#: sees interruptions and an on-demand array that does not.
DEFAULT_ARRAYS: tuple[ArrayPlan, ...] = (
    ArrayPlan(name="render", size=12, instance_type="c5.xlarge", spot=True, task_seconds=60.0),
    ArrayPlan(
        name="train",
        size=6,
        instance_type="g4dn.xlarge",
        spot=False,
        task_seconds=60.0,
        cost_limit_usd=TRAIN_COST_LIMIT_USD,
    ),
)


@dataclass
class _Worker:
    """Mutable state of one array member: its EC2 life and its worker's progress."""

    array_id: str
    array_name: str
    index: int
    instance_id: str
    instance_arn: str
    hostname: str
    spot: bool
    tasks_total: int
    duration: float
    fail_at: int | None
    reporter: Reporter
    # EC2 side: pending -> running -> shutting-down -> terminated.
    ec2_state: str = "pending"
    # Worker side: None until it first reports, then running | completed | failed, or
    # lost (interrupted without a final report; its row still says running).
    status: str | None = None
    progress: float = 0.0
    tasks_completed: int = 0
    error_count: int = 0
    last_tick: datetime | None = None
    interrupted: bool = False
    check_failing: bool = False


@dataclass
class _Array:
    plan: ArrayPlan
    array_id: str
    workers: list[_Worker] = field(default_factory=list)
    announced: bool = False

    @property
    def finished(self) -> bool:
        return all(w.ec2_state == "terminated" for w in self.workers)


class FleetSimulator:
    """Drives a fake spawn fleet one `step()` at a time.

    Every round launches each planned array; members go pending -> running, their
    workers report progress until they complete or fail (or spot reclaims them), their
    instances are terminated, and once every array of the round is gone a new round
    starts. Each EC2 change is followed by the event EC2 would have sent.
    """

    def __init__(
        self,
        *,
        ec2: EC2Client,
        events: EventBridgeClient,
        dynamodb: DynamoDBClient,
        sts: STSClient,
        progress_table: str,
        arrays: Sequence[ArrayPlan] = DEFAULT_ARRAYS,
        rng: random.Random,
        clock: Callable[[], datetime] = _utc_now,
        interruption_probability: float = 0.02,
        lost_share: float = LOST_SHARE,
        log: Callable[[str], None] = print,
        alarm_mode: str = "per-instance",
        launch_failures: bool = False,
        logs: CloudWatchLogsClient | None = None,
    ) -> None:
        if not arrays:
            raise ValueError("FleetSimulator needs at least one ArrayPlan")
        if not 0.0 <= interruption_probability <= 1.0:
            raise ValueError(
                f"interruption_probability must be within [0, 1], got {interruption_probability}"
            )
        if not 0.0 <= lost_share <= 1.0:
            raise ValueError(f"lost_share must be within [0, 1], got {lost_share}")
        self._lost_share = lost_share
        self._ec2 = ec2
        self._events = events
        self._dynamodb = dynamodb
        self._sts = sts
        self._launched_by: str | None = None
        self._table = progress_table
        self._plans = tuple(arrays)
        self._rng = rng
        self._clock = clock
        self._p_interrupt = interruption_probability
        self._log = log
        self._alarm_mode = alarm_mode
        self._launch_failures = launch_failures
        self._arrays: list[_Array] = []
        self._outbox: list[PutEventsRequestEntryTypeDef] = []
        self._round = 0
        # Workers report through the kit: each row goes out at once (no batching wait,
        # no background flusher), and a failure raises so `run` logs it.
        self._spool = tempfile.TemporaryDirectory(prefix="spawn-simulator-")
        self._kit = Settings(
            spool_dir=Path(self._spool.name),
            progress_table=progress_table,
            flush_seconds=0.0,
            strict=True,
            background=False,
        )
        # With a logs client, workers' job output goes to CloudWatch Logs as
        # `spawn-report run` sends it, and failures die of a real traceback.
        self._logs = (
            WorkerLogs(logs, Path(self._spool.name), lambda: self._clock().timestamp())
            if logs is not None
            else None
        )

    # ------------------------------------------------------------------ public API

    def step(self) -> None:
        """Advance the simulation by one step.

        Events for the AWS changes made in this step are flushed even when a later call
        in the step fails, so the monitor never misses a change that did happen.
        """
        now = self._clock()
        try:
            if not self._arrays or all(a.finished for a in self._arrays):
                self._launch_round(now)
            else:
                self._advance(now)
        finally:
            self._flush()

    def run(self, stop: threading.Event, interval: float) -> None:
        """Call `step()` every `interval` seconds until `stop` is set.

        AWS errors are logged and the loop carries on: the local endpoint may be
        restarting or reset, and a demo fleet should outlive that.
        """
        while not stop.is_set():
            try:
                self.step()
            except (BotoCoreError, ClientError, ReportError) as exc:
                self._log(f"simulator: step failed: {exc}")
            stop.wait(interval)

    # ------------------------------------------------------------------ launching

    def _launch_round(self, now: datetime) -> None:
        self._round += 1
        self._arrays = []
        for plan in self._plans:
            self._launch_array(plan, now)

    def _launch_array(self, plan: ArrayPlan, now: datetime) -> None:
        array_id = f"{plan.name}-{now.astimezone(UTC):%Y%m%d}-{self._rng.getrandbits(24):06x}"
        common_tags = [
            {"Key": "spawn:managed", "Value": "true"},
            {"Key": "spawn:job-array-id", "Value": array_id},
            {"Key": "spawn:job-array-name", "Value": plan.name},
            {"Key": "spawn:job-array-size", "Value": str(plan.size)},
            {"Key": "spawn:iam-user", "Value": self._caller_arn()},
            *cost_limit_tags(plan.cost_limit_usd),
        ]
        # Some members' launches fail (local/sim_launches.py): they stay pending.
        failing = (
            sim_launches.failing_members(plan.size, plan.spot, self._rng)
            if self._launch_failures
            else 0
        )
        params: dict[str, Any] = {
            "ImageId": DEFAULT_IMAGE_ID,
            "InstanceType": plan.instance_type,
            "MinCount": plan.size - failing,
            "MaxCount": plan.size - failing,
            "TagSpecifications": [{"ResourceType": "instance", "Tags": common_tags}],
        }
        if plan.spot:
            params["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {
                    "SpotInstanceType": "one-time",
                    "InstanceInterruptionBehavior": "terminate",
                },
            }
        response = self._ec2.run_instances(**params)
        region = self._ec2.meta.region_name
        account = response.get("OwnerId", "123456789012")
        array = _Array(plan=plan, array_id=array_id)
        for index, instance in enumerate(response["Instances"]):
            instance_id = instance["InstanceId"]
            hostname = self._hostname(instance.get("PrivateIpAddress"))
            duration = plan.task_seconds * self._rng.uniform(0.7, 1.3)
            tasks_total = self._rng.randint(80, 120)
            fails = self._rng.random() < FAILURE_PROBABILITY
            array.workers.append(
                _Worker(
                    array_id=array_id,
                    array_name=plan.name,
                    index=index,
                    instance_id=instance_id,
                    instance_arn=f"arn:aws:ec2:{region}:{account}:instance/{instance_id}",
                    hostname=hostname,
                    spot=plan.spot,
                    tasks_total=tasks_total,
                    duration=duration,
                    fail_at=self._rng.randint(1, tasks_total - 1) if fails else None,
                    reporter=Reporter(
                        self._kit,
                        identity=Identity(array_id, index, instance_id, hostname, region),
                        dynamodb=self._dynamodb,
                        clock=lambda: self._clock().timestamp(),
                    ),
                )
            )
        # Record the members before tagging them, so a failure while tagging cannot leave
        # instances the simulator no longer knows about (and would never terminate).
        self._arrays.append(array)
        # Each member's index differs, so each instance gets its own CreateTags call.
        for worker in array.workers:
            self._ec2.create_tags(
                Resources=[worker.instance_id],
                Tags=[
                    {"Key": "spawn:job-array-index", "Value": str(worker.index)},
                    {"Key": "Name", "Value": f"{plan.name}-{worker.index}"},
                ],
            )
        for worker in array.workers:
            self._state_change(worker, "pending", now)
        if failing:
            zone = response["Instances"][0].get("Placement", {}).get("AvailabilityZone", "")
            entries = sim_launches.failure_events(
                count=failing,
                first_index=plan.size - failing,
                tags={t["Key"]: t["Value"] for t in common_tags},
                instance_type=plan.instance_type,
                zones=[zone] if zone else [],
                at=now,
                region=region,
                account=account,
                caller_arn=self._caller_arn(),
                rng=self._rng,
            )
            self._outbox.extend(entries)  # type: ignore[arg-type]
            self._log(f"simulator: {array_id}: {failing} launches failed (CloudTrail events)")
        lifecycle = "spot" if plan.spot else "on-demand"
        self._log(
            f"simulator: round {self._round}: launched {array_id} "
            f"({plan.size} x {plan.instance_type}, {lifecycle})"
        )

    def _caller_arn(self) -> str:
        """Who launches, as spawn resolves it: once, from `GetCallerIdentity`."""
        if self._launched_by is None:
            self._launched_by = self._sts.get_caller_identity()["Arn"]
        return self._launched_by

    def _hostname(self, private_ip: str | None) -> str:
        if not private_ip:
            private_ip = f"10.0.{self._rng.randint(0, 255)}.{self._rng.randint(4, 254)}"
        return "ip-" + private_ip.replace(".", "-")

    # ------------------------------------------------------------------ advancing

    def _advance(self, now: datetime) -> None:
        to_terminate: list[_Worker] = []
        for array in self._arrays:
            for worker in array.workers:
                if worker.ec2_state == "pending":
                    self._boot(worker, now)
                elif worker.ec2_state == "shutting-down":
                    worker.ec2_state = "terminated"
                    if self._logs:
                        self._logs.ended(worker, None)
                    self._state_change(worker, "terminated", now)
                elif worker.ec2_state == "running" and self._work(worker, now):
                    to_terminate.append(worker)
            if array.finished and not array.announced:
                array.announced = True
                self._log(f"simulator: {array.array_id} finished ({self._summary(array)})")
        if to_terminate:
            self._terminate(to_terminate, now)
        if self._logs:
            self._logs.pump()

    def _boot(self, worker: _Worker, now: datetime) -> None:
        """The instance reached `running`; its worker starts and reports in."""
        worker.ec2_state = "running"
        self._state_change(worker, "running", now)
        worker.status = "running"
        worker.last_tick = now
        self._report(worker)
        if self._logs:
            self._logs.started(worker)

    def _work(self, worker: _Worker, now: datetime) -> bool:
        """Advance one running worker; return True when its instance should go away."""
        if worker.interrupted:
            # The interruption warning went out on an earlier step: spot reclaims it now.
            return True
        if worker.status != "running":
            # Finished on an earlier step but its termination failed: try again.
            return True
        if worker.spot and self._rng.random() < self._p_interrupt:
            self._interrupt(worker, now)
            return False
        if self._alarm_mode == "fleet-query":
            self._check(worker, now)
        if worker.spot and self._rng.random() < self._p_interrupt * REBALANCE_SHARE:
            self._emit(REBALANCE, {"instance-id": worker.instance_id}, worker, now)
            self._log(f"simulator: rebalance recommendation for {worker.array_id}[{worker.index}]")

        elapsed = (now - worker.last_tick).total_seconds() if worker.last_tick else 0.0
        worker.last_tick = now
        rate = worker.tasks_total / worker.duration
        worker.progress += max(0.0, elapsed) * rate * self._rng.uniform(0.5, 1.5)
        target = min(worker.tasks_total, int(worker.progress))
        if worker.fail_at is not None:
            target = min(target, worker.fail_at)
        advanced = target - worker.tasks_completed
        if advanced <= 0:
            return False
        errors = sum(1 for _ in range(advanced) if self._rng.random() < TASK_ERROR_PROBABILITY)
        worker.error_count += errors
        worker.tasks_completed = target
        if self._logs:
            self._logs.progressed(worker, target, errors)
        if worker.fail_at is not None and target >= worker.fail_at:
            worker.status = "failed"
            worker.error_count += 1
            if self._logs:
                self._logs.failed(worker)
            else:
                self._report(worker, f"task {target} failed: exit status 1")
            self._log(f"simulator: {worker.array_id}[{worker.index}] failed at task {target}")
            return True
        if target >= worker.tasks_total:
            worker.status = "completed"
            if self._logs:
                self._logs.completed(worker)
            else:
                self._report(worker)
            return True
        self._report(worker)
        return False

    def _check(self, worker: _Worker, now: datetime) -> None:
        """Now and then an instance fails its status check, and later recovers: its
        contributor of `spawn-fleet-status-check` goes to ALARM, then back to OK."""
        if worker.check_failing and self._rng.random() < CHECK_RECOVERY_PROBABILITY:
            worker.check_failing = False
            self._contributor(worker, "OK", now)
        elif not worker.check_failing and self._rng.random() < CHECK_FAILURE_PROBABILITY:
            worker.check_failing = True
            self._contributor(worker, "ALARM", now)
            self._log(f"simulator: {worker.array_id}[{worker.index}] fails its status check")

    def _contributor(self, worker: _Worker, state: str, now: datetime) -> None:
        """The event CloudWatch sends when one contributor of a query alarm changes state
        (events/cloudwatch-alarm-contributor-state-change.json has AWS's shape)."""
        _, _, _, region, account, _ = worker.instance_arn.split(":", 5)
        detail = {
            "alarmName": FLEET_STATUS_ALARM,
            "alarmContributor": {
                "id": f"{abs(hash(worker.instance_id)):016x}"[:16],
                "attributes": {"InstanceId": worker.instance_id},
            },
            "state": {
                "value": state,
                "reason": f"simulated: status check {'failed' if state == 'ALARM' else 'passed'}",
                "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.")
                + f"{now.microsecond // 1000:03d}+0000",
            },
        }
        self._outbox.append(
            {
                "Time": now,
                "Source": "aws.cloudwatch",
                "DetailType": CONTRIBUTOR_CHANGE,
                "Detail": json.dumps(detail),
                "Resources": [f"arn:aws:cloudwatch:{region}:{account}:alarm:{FLEET_STATUS_ALARM}"],
            }
        )

    def _interrupt(self, worker: _Worker, now: datetime) -> None:
        """Spot reclaims the instance: warn now (maybe after a rebalance), terminate next."""
        if self._rng.random() < REBALANCE_SHARE:
            self._emit(REBALANCE, {"instance-id": worker.instance_id}, worker, now)
        self._emit(
            SPOT_WARNING,
            {"instance-id": worker.instance_id, "instance-action": "terminate"},
            worker,
            now,
        )
        worker.interrupted = True
        name = f"{worker.array_id}[{worker.index}]"
        if self._rng.random() < self._lost_share:
            # It missed the notice (or died first): no final report, the monitor's to find.
            worker.status = "lost"
            self._log(f"simulator: spot interruption for {name}; worker lost, no final report")
            return
        # A spawn worker watches instance metadata for the notice and reports before it dies.
        worker.status = "failed"
        self._report(worker, "spot interruption notice received: instance terminating")
        if self._logs:
            self._logs.ended(worker, "spot interruption notice received: instance terminating")
        self._log(f"simulator: spot interruption for {name}")

    def _terminate(self, workers: list[_Worker], now: datetime) -> None:
        response = self._ec2.terminate_instances(InstanceIds=[w.instance_id for w in workers])
        states = {
            item["InstanceId"]: item["CurrentState"]["Name"]
            for item in response.get("TerminatingInstances", [])
            if "InstanceId" in item and "CurrentState" in item
        }
        for worker in workers:
            state = states.get(worker.instance_id, "shutting-down")
            if state not in ("shutting-down", "terminated"):
                continue
            # EC2 reports shutting-down first; `terminated` follows on the next step.
            worker.ec2_state = "shutting-down"
            self._state_change(worker, "shutting-down", now)

    @staticmethod
    def _summary(array: _Array) -> str:
        completed = sum(1 for w in array.workers if w.status == "completed")
        failed = sum(1 for w in array.workers if w.status == "failed")
        lost = sum(1 for w in array.workers if w.status == "lost")
        return f"{completed} completed, {failed} failed, {lost} lost"

    # ------------------------------------------------------------------ progress rows

    def _report(self, worker: _Worker, message: str | None = None) -> None:
        """Write the worker's progress row with the kit, as a Python worker would."""
        assert worker.status is not None
        worker.reporter.progress(
            worker.status,
            worker.tasks_completed,
            tasks_total=worker.tasks_total,
            error_count=worker.error_count,
            message=message,
        )

    # ------------------------------------------------------------------ events

    def _state_change(self, worker: _Worker, state: str, now: datetime) -> None:
        self._emit(STATE_CHANGE, {"instance-id": worker.instance_id, "state": state}, worker, now)

    def _emit(
        self, detail_type: str, detail: dict[str, str], worker: _Worker, now: datetime
    ) -> None:
        # Real EventBridge rejects PutEvents with an `aws.*` source (only AWS services may
        # send those); this is the local stand-in for EC2 itself, and moto accepts it.
        self._outbox.append(
            {
                "Time": now,
                "Source": "aws.ec2",
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "Resources": [worker.instance_arn],
            }
        )

    def _flush(self) -> None:
        """Send queued events in PutEvents batches of at most 10 entries."""
        while self._outbox:
            batch = self._outbox[:PUT_EVENTS_BATCH]
            response = self._events.put_events(Entries=batch)
            del self._outbox[:PUT_EVENTS_BATCH]
            failed = response.get("FailedEntryCount", 0)
            if failed:
                codes = sorted(
                    {e.get("ErrorCode", "?") for e in response["Entries"] if "ErrorCode" in e}
                )
                self._log(f"simulator: PutEvents rejected {failed} entries: {', '.join(codes)}")

"""One frozen settings object, read from the environment once.

Every setting has a default suited to a real deployment and is set per stage in
`.chalice/config.json`. A missing or malformed value fails at import time with a
message naming the variable, never deep inside a handler.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import lru_cache

from chalicelib.core.access import ISOLATION_MODES, check_readers

_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,256}$")
_BILLING_TOPIC = re.compile(r"^arn:aws[a-z-]*:sns:us-east-1:\d{12}:[A-Za-z0-9_-]{1,256}$")
_API_NAME = re.compile(r"^[A-Z][A-Za-z]{2,63}$")
# The retention periods CloudWatch Logs accepts (PutRetentionPolicy).
LOG_RETENTION_CHOICES = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827}
    | {2192, 2557, 2922, 3288, 3653}
)

# SPEC §5: a pair of alarms per instance, or two Metrics Insights alarms for the fleet.
ALARM_MODES = ("per-instance", "fleet-query")
# SPEC §14: the Price List API's endpoints; `snapshot` prices from the shipped snapshot
# only (the local stack: moto has no Price List API).
PRICING_REGIONS = ("us-east-1", "eu-central-1", "ap-south-1")
PRICE_SOURCES = ("api", "snapshot")
# SPEC §17: alerts of one array and kind are rolled up over at most five minutes.
NOTIFY_WINDOW_MAX_SECONDS = 300


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Runtime configuration.

    Attributes map one-to-one to environment variables (upper-cased names); see the
    README's configuration table for what each one means.
    """

    progress_table: str = "spawn-progress"
    instances_table: str = "spawn-instances"
    arrays_table: str = "spawn-arrays"
    alert_history_table: str = "spawn-alert-history"
    stats_table: str = "spawn-fleet-stats"
    alerts_topic: str = "spawn-alerts"
    critical_topic: str = "spawn-critical"
    lifecycle_queue: str = "spawn-lifecycle-events"
    managed_tag_keys: tuple[str, ...] = ("spawn:managed", "spawn")
    opt_out_tag: str = "spawn:monitoring"
    alarm_api_tps: float = 3.0
    alarm_mode: str = "per-instance"
    reconcile_grace_seconds: float = 300.0
    lifecycle_max_concurrency: int = 2
    stall_after_seconds: int = 600
    failed_alert_percent: float = 10.0
    recount_every_seconds: int = 3600
    unhealthy_percent_threshold: float = 5.0
    daily_cost_limit_usd: float = 1000.0
    billed_lookback_days: int = 14
    billed_max_calls: int = 5
    log_retention_days: int = 14
    alert_retention_days: int = 30
    enable_recover_action: bool = False
    count_unmanaged_interruptions: bool = False
    cursor_secret_id: str = "spawn-fleet-monitor/cursor-secret"  # noqa: S105 - a name
    api_isolation: str = "iam"
    fleet_readers: tuple[str, ...] = ()
    array_dashboard_retention_hours: float = 24.0
    low_throughput_tasks_per_minute: float = 1.0
    worker_log_retention_days: int = 7
    error_log_retention_days: int = 30
    billing_alarm_topic: str = "auto"
    console_skip_calls: tuple[str, ...] = ()
    count_untagged_launch_failures: bool = True
    launch_failure_alert_delay_seconds: float = 60.0
    array_budget_usd: float = 0.0
    pricing_region: str = "us-east-1"
    prices_from: str = "api"
    notify_secret_id: str = "spawn-fleet-monitor/notify"  # noqa: S105 - a name
    notify_window_seconds: int = 60
    notify_queue: str = "spawn-notify"
    notify_deliver_queue: str = "spawn-notify-deliver"
    notify_failed_queue: str = "spawn-notify-failed"
    notify_max_attempts: int = 5
    notify_timeout_seconds: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `environ` (default: `os.environ`), validating every value."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in fields(cls):
            var = field.name.upper()
            raw = env.get(var)
            if raw is None:
                continue
            raw = raw.strip()
            default = getattr(cls, field.name)
            try:
                values[field.name] = _coerce(raw, default)
            except ValueError as exc:
                raise SettingsError(f"setting {var}={raw!r} is invalid: {exc}") from None
        settings = cls(**values)  # type: ignore[arg-type]
        settings._validate()
        return settings

    def _validate(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            var = field.name.upper()
            if isinstance(value, str) and not _NAME.fullmatch(value):
                raise SettingsError(f"setting {var}={value!r} is not a valid resource name")
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if number and (not math.isfinite(value) or value < 0):
                raise SettingsError(
                    f"setting {var}={value!r} must be a finite, non-negative number"
                )
        if not self.managed_tag_keys:
            raise SettingsError("setting MANAGED_TAG_KEYS must name at least one tag key")
        if not 0 < self.unhealthy_percent_threshold <= 100:
            raise SettingsError("setting UNHEALTHY_PERCENT_THRESHOLD must be in (0, 100]")
        if self.alarm_api_tps == 0 or self.lifecycle_max_concurrency < 2:
            raise SettingsError(
                "settings ALARM_API_TPS must be positive and LIFECYCLE_MAX_CONCURRENCY at least 2"
            )
        if self.alarm_mode not in ALARM_MODES:
            raise SettingsError(
                f"setting ALARM_MODE={self.alarm_mode!r} must be one of " + " or ".join(ALARM_MODES)
            )
        if self.stall_after_seconds == 0:
            raise SettingsError("setting STALL_AFTER_SECONDS must be positive")
        if self.api_isolation not in ISOLATION_MODES:
            raise SettingsError(
                f"setting API_ISOLATION={self.api_isolation!r} must be one of "
                + " or ".join(ISOLATION_MODES)
            )
        try:
            check_readers(self.fleet_readers)
        except ValueError as exc:
            raise SettingsError(f"setting FLEET_READERS is invalid: {exc}") from None
        for var, days in (
            ("WORKER_LOG_RETENTION_DAYS", self.worker_log_retention_days),
            ("ERROR_LOG_RETENTION_DAYS", self.error_log_retention_days),
        ):
            if days not in LOG_RETENTION_CHOICES:
                raise SettingsError(
                    f"setting {var}={days} is not a retention CloudWatch Logs accepts "
                    f"({', '.join(map(str, sorted(LOG_RETENTION_CHOICES)))})"
                )
        if self.billing_alarm_topic != "auto" and not _BILLING_TOPIC.fullmatch(
            self.billing_alarm_topic
        ):
            raise SettingsError(
                "setting BILLING_ALARM_TOPIC must be `auto` or the ARN of an SNS topic in "
                "us-east-1, where billing alarms live"
            )
        if self.pricing_region not in PRICING_REGIONS:
            raise SettingsError(
                "setting PRICING_REGION must be one of "
                + ", ".join(PRICING_REGIONS)
                + " (where the Price List API has endpoints)"
            )
        if self.prices_from not in PRICE_SOURCES:
            raise SettingsError("setting PRICES_FROM must be one of " + " or ".join(PRICE_SOURCES))
        if not 1 <= self.notify_window_seconds <= NOTIFY_WINDOW_MAX_SECONDS:
            raise SettingsError(
                f"setting NOTIFY_WINDOW_SECONDS must be between 1 and {NOTIFY_WINDOW_MAX_SECONDS}"
            )
        if self.notify_max_attempts < 1 or self.notify_timeout_seconds == 0:
            raise SettingsError(
                "settings NOTIFY_MAX_ATTEMPTS and NOTIFY_TIMEOUT_SECONDS must be positive"
            )
        for call in self.console_skip_calls:
            if not _API_NAME.fullmatch(call):
                raise SettingsError(f"setting CONSOLE_SKIP_CALLS: {call!r} is not an API name")


def _coerce(raw: str, default: object) -> object:
    if isinstance(default, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, tuple):
        items = tuple(part.strip() for part in raw.split(",") if part.strip())
        return items
    if not raw:
        raise ValueError("must not be empty")
    return raw


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_env()

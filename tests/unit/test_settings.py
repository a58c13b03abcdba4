from __future__ import annotations

import pytest

from chalicelib.core.settings import Settings, SettingsError


def test_defaults_match_the_spec() -> None:
    settings = Settings.from_env({})
    assert settings.progress_table == "spawn-progress"
    assert settings.alerts_topic == "spawn-alerts"
    assert settings.critical_topic == "spawn-critical"
    assert settings.stall_after_seconds == 600
    assert settings.unhealthy_percent_threshold == 5.0
    assert settings.managed_tag_keys == ("spawn:managed", "spawn")


def test_values_are_read_and_typed() -> None:
    settings = Settings.from_env(
        {
            "STALL_AFTER_SECONDS": "120",
            "MANAGED_TAG_KEYS": "team:spawn, spawn",
            "ENABLE_RECOVER_ACTION": "true",
            "DAILY_COST_LIMIT_USD": "250.5",
        }
    )
    assert settings.stall_after_seconds == 120
    assert settings.managed_tag_keys == ("team:spawn", "spawn")
    assert settings.enable_recover_action is True
    assert settings.daily_cost_limit_usd == 250.5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STALL_AFTER_SECONDS", "ten minutes"),
        ("STALL_AFTER_SECONDS", "-5"),
        ("ENABLE_RECOVER_ACTION", "maybe"),
        ("UNHEALTHY_PERCENT_THRESHOLD", "140"),
        ("PROGRESS_TABLE", "has spaces"),
        ("ALERTS_TOPIC", ""),
        ("MANAGED_TAG_KEYS", " , "),
        ("ALARM_API_TPS", "nan"),
        ("FAILED_ALERT_PERCENT", "inf"),
    ],
)
def test_a_bad_value_fails_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WORKER_LOG_RETENTION_DAYS", "10"),
        ("ERROR_LOG_RETENTION_DAYS", "0"),
        ("BILLING_ALARM_TOPIC", "arn:aws:sns:eu-west-1:123456789012:billing"),
        ("BILLING_ALARM_TOPIC", "billing"),
        ("CONSOLE_SKIP_CALLS", "PutDashboard, put dashboard"),
        ("ARRAY_DASHBOARD_RETENTION_HOURS", "-1"),
        ("LOW_THROUGHPUT_TASKS_PER_MINUTE", "fast"),
    ],
)
def test_a_bad_console_setting_fails_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


def test_console_settings_are_read() -> None:
    settings = Settings.from_env(
        {
            "BILLING_ALARM_TOPIC": "arn:aws:sns:us-east-1:123456789012:billing",
            "CONSOLE_SKIP_CALLS": "PutCompositeAlarm, PutAnomalyDetector",
            "ARRAY_DASHBOARD_RETENTION_HOURS": "0.5",
            "WORKER_LOG_RETENTION_DAYS": "14",
        }
    )
    assert settings.billing_alarm_topic == "arn:aws:sns:us-east-1:123456789012:billing"
    assert settings.console_skip_calls == ("PutCompositeAlarm", "PutAnomalyDetector")
    assert settings.array_dashboard_retention_hours == 0.5
    assert settings.worker_log_retention_days == 14
    assert Settings.from_env({"CONSOLE_SKIP_CALLS": ""}).console_skip_calls == ()

from __future__ import annotations

import pytest

from chalicelib.settings import Settings, SettingsError


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

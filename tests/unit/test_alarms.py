from __future__ import annotations

from chalicelib.alarms.per_instance import (
    ALARM_KINDS,
    Watched,
    alarm_names,
    alarm_request,
    chunked,
    instance_of,
    plan,
)


def test_names_follow_the_guide() -> None:
    assert alarm_names("i-0abc12345678") == [
        "spawn-instance-i-0abc12345678-status",
        "spawn-instance-i-0abc12345678-system",
    ]
    assert instance_of("spawn-instance-i-0abc12345678-system") == "i-0abc12345678"
    assert instance_of("spawn-instance-i-0abc12345678-cpu") is None
    assert instance_of("spawn-fleet-unhealthy") is None


def test_plan_creates_missing_and_deletes_orphans_only() -> None:
    a, b, gone = "i-000000000000000a", "i-000000000000000b", "i-00000000000000ff"
    existing = [*alarm_names(a), alarm_names(b)[0], *alarm_names(gone), "spawn-instance-custom-x"]
    result = plan([Watched(a), Watched(b, "arr")], existing)
    assert result.create == (Watched(b, "arr"),)  # b lacks its system alarm
    assert result.delete == tuple(sorted(alarm_names(gone)))  # unknown names left alone
    assert plan([Watched(a)], alarm_names(a)).empty


def test_chunked_never_exceeds_the_size() -> None:
    assert [len(c) for c in chunked(list(range(250)), 100)] == [100, 100, 50]
    assert list(chunked([], 100)) == []


def test_alarm_kinds_are_data() -> None:
    assert [k.metric for k in ALARM_KINDS] == [
        "StatusCheckFailed_Instance",
        "StatusCheckFailed_System",
    ]
    request = alarm_request(
        Watched("i-000000000000000a"),
        ALARM_KINDS[0],
        topic_arn="arn:t",
        region="eu-west-1",
        recover=True,
    )
    assert request["AlarmActions"] == ["arn:t"]  # the status check is not recoverable
    system = alarm_request(
        Watched("i-000000000000000a"),
        ALARM_KINDS[1],
        topic_arn="arn:t",
        region="eu-west-1",
        recover=True,
    )
    assert system["AlarmActions"] == ["arn:t", "arn:aws:automate:eu-west-1:ec2:recover"]


def test_a_series_breaches_as_the_alarm_judges_it_two_latest_minutes_at_one() -> None:
    from datetime import UTC, datetime

    from chalicelib.alarms.fleet_query import breaching

    t = [datetime(2026, 1, 27, 10, m, tzinfo=UTC) for m in range(5)]
    assert breaching(t[:3], [0.0, 1.0, 1.0])
    # Order of the answer does not matter: the latest two by time count.
    assert breaching(list(reversed(t[:3])), [1.0, 1.0, 0.0])
    assert not breaching(t[:3], [1.0, 1.0, 0.0])  # recovered in the latest minute
    assert not breaching(t[:1], [1.0])  # one minute is not two
    assert not breaching([], [])


def test_contributors_are_capped_at_100_or_when_the_reason_says_so() -> None:
    from chalicelib.alarms.fleet_query import capped

    assert capped(None, 100)
    assert not capped({"StateReason": "95 out of 150 time series evaluated to ALARM"}, 95)
    assert capped({"StateReason": "100+ time series evaluated to ALARM"}, 99)
    # Large attributes can cut the listing below 100; the reason then says "85+".
    assert capped({"StateReason": "85+ out of 150 time series evaluated to ALARM"}, 85)

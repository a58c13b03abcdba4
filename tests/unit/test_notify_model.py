"""The notification pipeline's data survives its queues, and hides its credentials."""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib.notify.model import DeliveryJob, Destination, HttpRequest, Notice


def test_a_delivery_job_survives_the_queue() -> None:
    notice = Notice(
        notice_id="n1",
        kind="alert",
        event_type="spot_interruption",
        severity="warning",
        subject="312 of 1,000 workers interrupted",
        text="290 of them c5.xlarge in us-east-1a",
        count=312,
        array_id="render-20260127-a1b2c3",
        first_at=datetime(2026, 1, 27, 10, 0, tzinfo=UTC),
        last_at=datetime(2026, 1, 27, 10, 1, tzinfo=UTC),
        window_seconds=60,
        breakdowns={"zone": (("us-east-1a", 290), ("us-east-1b", 22))},
        facts=(("Tasks", "10 of 1,000"),),
        links=(("Dashboard", "https://example.com/d"),),
        details={"instances": 312},
    )
    job = DeliveryJob(notice, "ops-slack", attempt=2)

    back = DeliveryJob.from_json(job.to_json())

    assert back == job
    assert back.delivery_id == "n1:ops-slack"


def test_credentials_stay_out_of_reprs_and_descriptions() -> None:
    url, key = "https://hooks.slack.com/services/T0/B0/XYZ", "k3y"
    destination = Destination("ops", "webhook", url, signing_key=key, min_severity="warning")

    shown = repr(destination) + repr(destination.describe()) + repr(HttpRequest(url, {}, b""))

    assert url not in shown
    assert key not in shown
    assert destination.describe()["min_severity"] == "warning"

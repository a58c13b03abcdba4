"""Each chat format follows its service's documented shape and limits, and cuts what is too
long (a huge breakdown, text, items) rather than build a body the service would refuse."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.notify.model import Destination, DestinationKind, Notice
from chalicelib.notify.render import render
from chalicelib.notify.text import fit_lines, top_and_rest

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
SECRET_URL = "https://hooks.example.com/services/T0SECRET/B0SECRET/xyzSECRETtoken"
DASHBOARD = "https://console.aws.amazon.com/cloudwatch/home#dashboards:name=spawn-array-r1"
CHAT_KINDS: tuple[DestinationKind, ...] = ("slack", "discord", "teams")


def destination(kind: DestinationKind) -> Destination:
    return Destination(f"ops-{kind}", kind, SECRET_URL, signing_key="k" * 16)


def notice(**changes: Any) -> Notice:
    fields: dict[str, Any] = {
        "notice_id": "n1",
        "kind": "alert",
        "event_type": "spot_interruption",
        "severity": "warning",
        "subject": "12,345 workers interrupted in render-1",
        "text": "Most of them c5.xlarge in us-east-1a.",
        "count": 12345,
        "array_id": "render-20261204-a1b2c3",
        "array_name": "render-1",
        "first_at": datetime(2026, 12, 4, 11, 59, tzinfo=UTC),
        "last_at": NOW,
        "window_seconds": 60,
        "breakdowns": {
            "zone": (("us-east-1a", 12000), ("us-east-1b", 345)),
            "instance_type": (("c5.xlarge", 10000), ("c5.2xlarge", 2345)),
        },
        "facts": (("Tasks", "998 of 1,000"), ("Spend", "$12.34")),
        "items": (("task 17", "exit 137: OOM"), ("task 18", "exit 1")),
        "links": (("Dashboard", DASHBOARD), ("Web view", "https://example.com/a?x=1&y=2")),
    }
    fields.update(changes)
    return Notice(**fields)


def wide_breakdown(n: int, total: int, value: str = "v") -> tuple[tuple[str, int], ...]:
    """`n` distinct values, highest first, whose counts add up to `total`."""
    counts = [total // n] * n
    counts[0] += total - sum(counts)
    return tuple((f"{value}{i:04d}", c) for i, c in enumerate(counts))


def huge() -> Notice:
    """Everything too long at once: 500 zones, 5,000-character instance types, long text."""
    count = 123456
    long_value = "é" * 5000
    return notice(
        subject="Ω " + "subject that goes on " * 50,
        text="<!channel> & @everyone " + "🚀 long text " * 5000,
        count=count,
        breakdowns={
            "zone": wide_breakdown(500, count),
            "instance_type": tuple((f"{long_value}{i}", count // 4) for i in range(4)),
            "error_code": wide_breakdown(200, count, value="E" * 3000),
        },
        facts=tuple((f"fact {i} " * 40, "value & more " * 400) for i in range(40)),
        items=tuple((f"task {i}", "exit 137: " + "OOM <killed> " * 500) for i in range(2000)),
        links=(
            *((f"link {i}", f"https://example.com/{i}") for i in range(12)),
            ("too long to link", "https://example.com/" + "x" * 5000),
        ),
    )


def body_of(n: Notice, kind: DestinationKind) -> tuple[bytes, dict[str, Any]]:
    request = render(n, destination(kind), NOW)
    assert request.headers["Content-Type"] == "application/json"
    return request.body, json.loads(request.body)


def count_of(line: str) -> int:
    """The count at the end of a breakdown row: '• us-east-1a — 12,000' -> 12000."""
    match = re.search(r"([\d,]+)\**$", line.strip())
    assert match, line
    return int(match.group(1).replace(",", ""))


# Slack


def check_slack(body: dict[str, Any]) -> None:
    """What Block Kit refuses: https://docs.slack.dev/reference/block-kit/blocks."""
    assert isinstance(body["text"], str)
    assert 0 < len(body["text"]) <= 3000
    blocks = body["blocks"]
    assert 0 < len(blocks) <= 50
    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["type"] == "plain_text"
    assert 0 < len(blocks[0]["text"]["text"]) <= 150
    for block in blocks[1:]:
        assert block["type"] in {"section", "context"}
        if block["type"] == "context":
            assert 0 < len(block["elements"]) <= 10
            for element in block["elements"]:
                assert element["type"] == "mrkdwn"
                assert 0 < len(element["text"]) <= 3000
        elif "fields" in block:
            assert 0 < len(block["fields"]) <= 10
            for f in block["fields"]:
                assert f["type"] == "mrkdwn"
                assert 0 < len(f["text"]) <= 2000
        else:
            assert block["text"]["type"] == "mrkdwn"
            assert 0 < len(block["text"]["text"].strip()) <= 3000


def slack_mrkdwn(body: dict[str, Any]) -> list[str]:
    texts = [body["text"]]
    for block in body["blocks"][1:]:
        texts += [e["text"] for e in block.get("elements", [])]
        texts += [f["text"] for f in block.get("fields", [])]
        texts += [block["text"]["text"]] if "text" in block else []
    return texts


def slack_breakdown(body: dict[str, Any], heading: str) -> list[str]:
    for block in body["blocks"]:
        text = block.get("text", {}).get("text", "")
        if text.startswith(f"*{heading}*"):
            return [line for line in text.splitlines()[1:]]
    raise AssertionError(f"no breakdown {heading}")


def test_slack_has_a_header_text_facts_breakdowns_items_and_context() -> None:
    _, body = body_of(notice(), "slack")

    check_slack(body)
    assert body["blocks"][0]["text"]["text"] == "12,345 workers interrupted in render-1"
    assert "12,345 workers interrupted" in body["text"]
    types = [b["type"] for b in body["blocks"]]
    assert types == ["header", "section", "section", "section", "section", "section", "context"]
    fields = body["blocks"][2]["fields"]
    assert fields[0]["text"] == "*Tasks*\n998 of 1,000"
    assert slack_breakdown(body, "Zone") == ["• us-east-1a — 12,000", "• us-east-1b — 345"]
    assert "*task 17* exit 137: OOM" in body["blocks"][5]["text"]["text"]
    context = [e["text"] for e in body["blocks"][-1]["elements"]]
    assert context[0].startswith("render-1 · warning · 12,345 alerts")
    assert f"<{DASHBOARD}|Dashboard>" in context
    assert "<https://example.com/a?x=1&amp;y=2|Web view>" in context


def test_slack_escapes_control_characters_so_nothing_mentions_or_links() -> None:
    n = notice(
        subject="<!channel> a & b",
        text="<!here> <@U123> <https://evil.example|click> a & b",
        facts=(("<!everyone>", "x > y"),),
        items=(("<@U1>", "<!subteam^S1>"),),
    )
    _, body = body_of(n, "slack")

    check_slack(body)
    for text in slack_mrkdwn(body):
        assert "<!" not in text
        assert "<@" not in text
        assert "<https://evil" not in text
    assert body["blocks"][1]["text"]["text"] == (
        "&lt;!here&gt; &lt;@U123&gt; &lt;https://evil.example|click&gt; a &amp; b"
    )
    assert "&lt;!channel&gt; a &amp; b" in body["text"]
    assert "link_names" not in body
    assert "parse" not in body


def test_slack_cuts_a_huge_notice_to_its_limits() -> None:
    n = huge()
    _, body = body_of(n, "slack")

    check_slack(body)
    assert body["blocks"][1]["text"]["text"].endswith("…")
    assert body["blocks"][0]["text"]["text"].endswith("…")
    zones = slack_breakdown(body, "Zone")
    assert len(zones) == 6
    assert zones[-1].startswith("• … and 495 more — ")
    assert sum(count_of(line) for line in zones) == n.count
    items = [b for b in body["blocks"] if "*task 0*" in b.get("text", {}).get("text", "")]
    assert len(items) == 1
    assert re.search(r"… and [\d,]+ more$", items[0]["text"]["text"])
    # No cut leaves half an entity behind.
    for text in slack_mrkdwn(body):
        assert not re.search(r"&[a-z]{0,3}…", text)


def test_slack_keeps_to_fifty_blocks_with_many_facts() -> None:
    n = notice(facts=tuple((f"fact {i}", str(i)) for i in range(1000)))
    _, body = body_of(n, "slack")

    check_slack(body)
    assert len(body["blocks"]) == 50
    assert body["blocks"][-1]["type"] == "context"


# Discord


def discord_total(embeds: list[dict[str, Any]]) -> int:
    total = 0
    for embed in embeds:
        total += len(embed.get("title", "")) + len(embed.get("description", ""))
        total += len(embed.get("footer", {}).get("text", ""))
        total += len(embed.get("author", {}).get("name", ""))
        total += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    return total


def check_discord(body: dict[str, Any]) -> None:
    """https://discord.com/developers/docs/resources/message#embed-object-embed-limits."""
    assert body["allowed_mentions"] == {"parse": []}
    assert 0 < len(body["content"]) <= 2000
    embeds = body["embeds"]
    assert 0 < len(embeds) <= 10
    for embed in embeds:
        assert 0 < len(embed["title"]) <= 256
        assert len(embed.get("description", "")) <= 4096
        assert isinstance(embed["color"], int)
        assert len(embed.get("fields", [])) <= 25
        for f in embed.get("fields", []):
            assert 0 < len(f["name"]) <= 256
            assert 0 < len(f["value"]) <= 1024
            assert isinstance(f["inline"], bool)
        assert 0 < len(embed["footer"]["text"]) <= 2048
    assert discord_total(embeds) <= 6000


def discord_field(body: dict[str, Any], prefix: str) -> dict[str, Any]:
    fields = [f for f in body["embeds"][0]["fields"] if f["name"].startswith(prefix)]
    assert len(fields) == 1, prefix
    return fields[0]


def test_discord_has_an_embed_with_fields_a_link_and_a_colour() -> None:
    _, body = body_of(notice(severity="critical"), "discord")

    check_discord(body)
    embed = body["embeds"][0]
    assert body["content"] == "12,345 workers interrupted in render-1"
    assert embed["title"] == "12,345 workers interrupted in render-1"
    assert embed["url"] == DASHBOARD
    assert embed["color"] == 0xE01E5A
    assert embed["timestamp"] == NOW.isoformat()
    assert embed["description"].startswith("Most of them c5.xlarge in us-east-1a.")
    assert "**task 17** exit 137: OOM" in embed["description"]
    zone = discord_field(body, "Zone (12,345)")
    assert zone["inline"] is True
    assert zone["value"] == "us-east-1a — **12,000**\nus-east-1b — **345**"
    assert discord_field(body, "Tasks")["value"] == "998 of 1,000"
    assert "[Web view](https://example.com/a?x=1&y=2)" in discord_field(body, "Links")["value"]
    assert "12,345 alerts" in embed["footer"]["text"]


def test_discord_never_pings_everyone() -> None:
    _, body = body_of(notice(subject="@everyone look", text="@here <@123>"), "discord")

    check_discord(body)
    assert body["content"] == "@everyone look"
    assert body["allowed_mentions"]["parse"] == []


def test_discord_cuts_a_huge_notice_to_its_limits() -> None:
    n = huge()
    _, body = body_of(n, "discord")

    check_discord(body)
    embed = body["embeds"][0]
    assert embed["title"].endswith("…")
    zone = discord_field(body, "Zone")
    rows = zone["value"].splitlines()
    assert rows[-1].startswith("… and 495 more — ")
    assert sum(count_of(row) for row in rows) == n.count
    types = discord_field(body, "Instance type")["value"].splitlines()
    assert sum(count_of(row) for row in types) == sum(c for _, c in n.breakdowns["instance_type"])
    assert "…" in types[0]
    assert "…" in embed["description"]


# Teams


def check_teams(raw: bytes, body: dict[str, Any]) -> dict[str, Any]:
    """The workflow's envelope, an Adaptive Card 1.4, and Teams' 28 KB message size."""
    assert len(raw) <= 28 * 1024
    assert body["type"] == "message"
    assert len(body["attachments"]) == 1
    attachment = body["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert "contentUrl" in attachment
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    for element in card["body"]:
        assert element["type"] in {"TextBlock", "FactSet"}
        if element["type"] == "TextBlock":
            assert element["wrap"] is True
            assert element["text"]
        else:
            assert element["facts"]
            for fact in element["facts"]:
                assert isinstance(fact["title"], str)
                assert isinstance(fact["value"], str)
    for action in card.get("actions", []):
        assert action["type"] == "Action.OpenUrl"
        assert action["url"].startswith("https://")
        assert action["title"]
    assert isinstance(card, dict)
    return card


def teams_breakdown(card: dict[str, Any], heading: str) -> list[dict[str, str]]:
    body = card["body"]
    for i, element in enumerate(body):
        if element["type"] == "TextBlock" and element["text"].startswith(heading):
            facts: list[dict[str, str]] = body[i + 1]["facts"]
            return facts
    raise AssertionError(f"no breakdown {heading}")


def test_teams_posts_an_adaptive_card_in_the_workflow_envelope() -> None:
    raw, body = body_of(notice(), "teams")

    card = check_teams(raw, body)
    first, second = card["body"][0], card["body"][1]
    assert first["text"] == "12,345 workers interrupted in render-1"
    assert first["weight"] == "Bolder"
    assert second["text"] == "Most of them c5.xlarge in us-east-1a."
    assert card["body"][2]["facts"][0] == {"title": "Tasks", "value": "998 of 1,000"}
    assert teams_breakdown(card, "Zone (12,345)") == [
        {"title": "us-east-1a", "value": "12,000"},
        {"title": "us-east-1b", "value": "345"},
    ]
    items = [
        e for e in card["body"] if e["type"] == "FactSet" and e["facts"][0]["title"] == "task 17"
    ]
    assert len(items) == 1
    assert [a["url"] for a in card["actions"]] == [DASHBOARD, "https://example.com/a?x=1&y=2"]


def test_teams_shrinks_a_huge_notice_under_28_kb() -> None:
    n = huge()
    raw, body = body_of(n, "teams")

    card = check_teams(raw, body)
    assert card["body"][0]["text"].endswith("…")
    assert card["body"][1]["text"].endswith("…")
    zone = teams_breakdown(card, "Zone")
    assert zone[-1]["title"] == "… and 495 more"
    assert sum(int(f["value"].replace(",", "")) for f in zone) == n.count
    assert len(card.get("actions", [])) <= 6
    assert "x" * 5000 not in raw.decode()


def test_teams_keeps_every_item_of_a_small_notice() -> None:
    n = notice(items=tuple((f"task {i}", "exit 1") for i in range(30)))
    raw, body = body_of(n, "teams")

    card = check_teams(raw, body)
    items = [
        e for e in card["body"] if e["type"] == "FactSet" and e["facts"][0]["title"] == "task 0"
    ]
    assert len(items) == 1
    assert len(items[0]["facts"]) == 30


# Every chat kind


def check(kind: DestinationKind, raw: bytes, body: dict[str, Any]) -> None:
    if kind == "slack":
        check_slack(body)
    elif kind == "discord":
        check_discord(body)
    else:
        check_teams(raw, body)


@pytest.mark.parametrize("kind", CHAT_KINDS)
def test_a_huge_notice_renders_within_limits(kind: DestinationKind) -> None:
    raw, body = body_of(huge(), kind)

    check(kind, raw, body)
    assert SECRET_URL not in raw.decode()
    assert "SECRET" not in raw.decode()


@pytest.mark.parametrize("kind", CHAT_KINDS)
def test_the_destination_url_never_appears_in_the_body(kind: DestinationKind) -> None:
    raw, _ = body_of(notice(), kind)

    assert "SECRET" not in raw.decode()
    assert "hooks.example.com" not in raw.decode()


@pytest.mark.parametrize("kind", CHAT_KINDS)
def test_unicode_passes_through_unchanged(kind: DestinationKind) -> None:
    n = notice(
        subject="東京 ap-northeast-1 🚨 Überlastung",
        text="Zürich — ünïcödé 🚀",
        breakdowns={"zone": (("ap-northeast-1a 東京", 12345),)},
    )
    raw, _ = body_of(n, kind)

    text = raw.decode("utf-8")
    assert "東京 ap-northeast-1 🚨 Überlastung" in text
    assert "Zürich — ünïcödé 🚀" in text
    assert "ap-northeast-1a 東京" in text


@pytest.mark.parametrize("kind", CHAT_KINDS)
def test_an_empty_text_and_subject_still_render(kind: DestinationKind) -> None:
    n = notice(subject="  ", text="", facts=(), items=(), links=(), breakdowns={})
    raw, body = body_of(n, kind)

    check(kind, raw, body)
    assert "spot_interruption" in raw.decode()


# The shared helpers


def test_top_and_rest_keeps_the_total_and_names_the_rest() -> None:
    pairs = wide_breakdown(500, 1_000_003)

    rows = top_and_rest(pairs, top=5)

    assert len(rows) == 6
    assert rows[:5] == list(pairs[:5])
    assert rows[5] == ("… and 495 more", sum(c for _, c in pairs[5:]))
    assert sum(c for _, c in rows) == 1_000_003


def test_top_and_rest_shows_a_single_rest_value_itself() -> None:
    pairs = wide_breakdown(6, 60)

    assert top_and_rest(pairs, top=5) == list(pairs)


def test_fit_lines_keeps_whole_lines_and_says_how_many_are_left() -> None:
    lines = [f"line {i:03d}" for i in range(100)]

    fitted = fit_lines(lines, 100)

    assert len(fitted) <= 100
    kept = fitted.splitlines()
    assert kept[:-1] == lines[: len(kept) - 1]
    assert kept[-1] == f"… and {100 - (len(kept) - 1)} more"
    assert fit_lines(lines[:3], 100) == "line 000\nline 001\nline 002"

"""A notice as each kind of destination takes it: one `HttpRequest` per (notice, destination).

`render(notice, destination, now)` picks the kind's format: Slack Block Kit, a Discord embed,
a Teams Adaptive Card, or the generic webhook's SPEC §17 body, signed with
`X-Spawn-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">` (`verify_signature`
checks it and refuses stale timestamps). Each chat format keeps to its service's documented
limits, cutting texts and lists rather than have the post refused.

    >>> request = render(notice, destination, datetime.now(UTC))
    >>> request.headers["Content-Type"]
    'application/json'
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib.notify.model import Destination, HttpRequest, Notice
from chalicelib.notify.text import cut, fit_lines, more, number, top_and_rest

JSON = "application/json"
TIMESTAMP_HEADER = "X-Spawn-Timestamp"
SIGNATURE_HEADER = "X-Spawn-Signature"
NOTICE_HEADER = "X-Spawn-Notice"
# A receiver refuses a signed body older than this (the default of `verify_signature`).
REPLAY_TOLERANCE_SECONDS = 300

# Every chat format: at most this many breakdowns (SPEC names three), and links whose URL
# is longer than this are left out (a cut URL would lead nowhere).
BREAKDOWNS_SHOWN_MAX = 5
LINK_URL_MAX = 2000
# An item's label and text are cut to these before the list is fitted to its block.
ITEM_LABEL_MAX = 100
ITEM_TEXT_MAX = 400
FACT_LABEL_MAX = 200
# A fact is a short value ("998 of 1,000"); a longer one is cut well under the services'
# field limits, so forty facts still make a message a person reads.
FACT_VALUE_MAX = 500

# Slack, https://docs.slack.dev/reference/methods/chat.postMessage: top-level `text` is the
# notification fallback, truncated past 40,000 characters and best under 4,000; keep under.
SLACK_TEXT_MAX = 3000
# Slack, https://docs.slack.dev/reference/block-kit/blocks: "up to 50 blocks" per message.
SLACK_BLOCKS_MAX = 50
# Slack header block (.../blocks/header-block): plain_text, "Maximum length ... 150".
SLACK_HEADER_MAX = 150
# Slack section block (.../blocks/section-block): text "Maximum length ... 3000";
# `fields` "Maximum number of items is 10", each "Maximum length ... 2000".
SLACK_SECTION_TEXT_MAX = 3000
SLACK_FIELDS_MAX = 10
SLACK_FIELD_TEXT_MAX = 2000
# Slack context block (.../blocks/context-block): "Maximum number of items is 10".
SLACK_CONTEXT_ELEMENTS_MAX = 10

# Discord, https://discord.com/developers/docs/resources/message#create-message: `content`
# up to 2,000 characters, up to 10 embeds; embed limits from
# https://discord.com/developers/docs/resources/message#embed-object-embed-limits.
DISCORD_CONTENT_MAX = 2000
DISCORD_EMBEDS_MAX = 10
DISCORD_TITLE_MAX = 256
DISCORD_DESCRIPTION_MAX = 4096
DISCORD_FIELDS_MAX = 25
DISCORD_FIELD_NAME_MAX = 256
DISCORD_FIELD_VALUE_MAX = 1024
DISCORD_FOOTER_MAX = 2048
# "The combined sum of characters in all title, description, field.name, field.value,
# footer.text, and author.name fields across all embeds attached to a message must not
# exceed 6000 characters."
DISCORD_TOTAL_MAX = 6000
# Fields are dropped until the description has at least this much of the total left.
DISCORD_DESCRIPTION_MIN = 500
# Embed colours by severity (Discord takes an integer RGB).
DISCORD_COLORS = {"critical": 0xE01E5A, "warning": 0xECB22E, "info": 0x36C5F0}

# Teams, https://learn.microsoft.com/microsoftteams/limits-specifications-teams
# ("Chat and channel messages": message size 28 KB, the card included); also the limit
# for workflow webhooks' posts. Measured on the UTF-8 JSON body.
TEAMS_BODY_MAX = 28 * 1024
TEAMS_CARD_VERSION = "1.4"
TEAMS_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
TEAMS_CARD_TYPE = "application/vnd.microsoft.card.adaptive"
# Teams' Adaptive Card host config shows at most 6 actions.
TEAMS_ACTIONS_MAX = 6


def render(notice: Notice, destination: Destination, now: datetime) -> HttpRequest:
    """The POST that delivers `notice` to `destination` at `now`."""
    return _FORMATS[destination.kind](notice, destination, now)


def webhook_body(notice: Notice) -> dict[str, Any]:
    """The generic webhook's JSON body (SPEC §17)."""
    return {
        "kind": notice.kind,
        "array_id": notice.array_id,
        "event_type": notice.event_type,
        "severity": notice.severity,
        "count": notice.count,
        "subject": notice.subject,
        "text": notice.text,
        "details": _webhook_details(notice),
    }


def signature(key: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">`."""
    mac = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    key: str,
    timestamp: str,
    body: bytes,
    presented: str,
    now: float,
    tolerance: float = REPLAY_TOLERANCE_SECONDS,
) -> bool:
    """Whether a generic webhook's POST is genuine and fresh (what a receiver checks)."""
    try:
        sent = float(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > tolerance:
        return False
    return hmac.compare_digest(signature(key, timestamp, body), presented)


def slack_body(notice: Notice) -> dict[str, Any]:
    """A Slack incoming webhook's JSON: `text` for notifications, then Block Kit blocks.

    User text is escaped (`&`, `<`, `>`), so nothing in it becomes a link or a mention.
    """
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": cut(_title(notice), SLACK_HEADER_MAX)},
        }
    ]
    if notice.text.strip():
        blocks.append(_slack_section(_mrkdwn(notice.text, SLACK_SECTION_TEXT_MAX)))
    facts = list(notice.facts)
    for start in range(0, len(facts), SLACK_FIELDS_MAX):
        fields = [
            {"type": "mrkdwn", "text": _slack_fact(label, value)}
            for label, value in facts[start : start + SLACK_FIELDS_MAX]
        ]
        blocks.append({"type": "section", "fields": fields})
    for label, pairs in _breakdowns(notice):
        lines = [f"• {_mrkdwn(value)} — {number(count)}" for value, count in top_and_rest(pairs)]
        heading = f"*{_mrkdwn(label)}* ({number(sum(n for _, n in pairs))})"
        blocks.append(_slack_section(fit_lines([heading, *lines], SLACK_SECTION_TEXT_MAX)))
    if notice.items:
        lines = [
            f"*{_mrkdwn(label, ITEM_LABEL_MAX)}* {_mrkdwn(text, ITEM_TEXT_MAX)}"
            for label, text in notice.items
        ]
        blocks.append(_slack_section(fit_lines(lines, SLACK_SECTION_TEXT_MAX)))
    elements = [{"type": "mrkdwn", "text": _mrkdwn(_about(notice), SLACK_SECTION_TEXT_MAX)}]
    elements += [
        {"type": "mrkdwn", "text": f"<{_slack_url(url)}|{_mrkdwn(label, ITEM_LABEL_MAX)}>"}
        for label, url in _links(notice)
    ]
    context = {"type": "context", "elements": elements[:SLACK_CONTEXT_ELEMENTS_MAX]}
    fallback = _mrkdwn(f"{_title(notice)}\n{notice.text}".strip(), SLACK_TEXT_MAX)
    return {
        "text": fallback,
        "blocks": [*blocks[: SLACK_BLOCKS_MAX - 1], context],
        "unfurl_links": False,
        "unfurl_media": False,
    }


def discord_body(notice: Notice) -> dict[str, Any]:
    """A Discord webhook's JSON: the subject as `content`, one embed, and no mentions."""
    title = cut(_title(notice), DISCORD_TITLE_MAX)
    footer = cut(_about(notice), DISCORD_FOOTER_MAX)
    facts = [
        _discord_field(label, cut(value, FACT_VALUE_MAX), inline=True)
        for label, value in notice.facts[:DISCORD_FIELDS_MAX]
    ]
    breakdowns = [
        _discord_field(
            f"{label} ({number(sum(n for _, n in pairs))})",
            fit_lines(
                [f"{value} — **{number(count)}**" for value, count in top_and_rest(pairs)],
                DISCORD_FIELD_VALUE_MAX,
            ),
            inline=True,
        )
        for label, pairs in _breakdowns(notice)
    ]
    links = _links(notice)
    extra_links = [f"[{label}]({url})" for label, url in links[1:]]
    link_fields = (
        [_discord_field("Links", fit_lines(extra_links, DISCORD_FIELD_VALUE_MAX), inline=False)]
        if extra_links
        else []
    )
    facts = facts[: DISCORD_FIELDS_MAX - len(breakdowns) - len(link_fields)]
    # Keep room for the description: drop the other links first, then facts, then breakdowns.
    while _discord_size(title, footer, [*facts, *breakdowns, *link_fields]) > (
        DISCORD_TOTAL_MAX - DISCORD_DESCRIPTION_MIN
    ):
        (link_fields or facts or breakdowns).pop()
    fields = [*facts, *breakdowns, *link_fields]
    budget = min(DISCORD_DESCRIPTION_MAX, DISCORD_TOTAL_MAX - _discord_size(title, footer, fields))
    embed: dict[str, Any] = {"title": title, "color": DISCORD_COLORS.get(notice.severity, 0)}
    description = _discord_description(notice, budget)
    if description:
        embed["description"] = description
    if links:
        embed["url"] = links[0][1]
    if fields:
        embed["fields"] = fields
    embed["footer"] = {"text": footer}
    if notice.last_at:
        embed["timestamp"] = notice.last_at.isoformat()
    return {
        "content": cut(_title(notice), DISCORD_CONTENT_MAX),
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    }


def teams_body(notice: Notice) -> dict[str, Any]:
    """A Teams workflow webhook's JSON: one Adaptive Card in a message, within 28 KB.

    The card is built at the most generous of a few sizes that fits; the last resort is
    the subject and the start of the text alone.
    """
    for size in _TEAMS_SIZES:
        body = _teams_message(_teams_card(notice, size))
        if len(_encode(body)) <= TEAMS_BODY_MAX:
            return body
    return _teams_message(_teams_card(notice, _TEAMS_LAST_RESORT))


def _webhook(notice: Notice, destination: Destination, now: datetime) -> HttpRequest:
    assert destination.signing_key is not None  # parse_destination requires one
    body = _encode(webhook_body(notice))
    timestamp = str(int(now.timestamp()))
    headers = {
        "Content-Type": JSON,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(destination.signing_key, timestamp, body),
        NOTICE_HEADER: notice.notice_id,
    }
    return HttpRequest(destination.url, headers, body)


def _slack(notice: Notice, destination: Destination, now: datetime) -> HttpRequest:
    return HttpRequest(destination.url, {"Content-Type": JSON}, _encode(slack_body(notice)))


def _discord(notice: Notice, destination: Destination, now: datetime) -> HttpRequest:
    return HttpRequest(destination.url, {"Content-Type": JSON}, _encode(discord_body(notice)))


def _teams(notice: Notice, destination: Destination, now: datetime) -> HttpRequest:
    return HttpRequest(destination.url, {"Content-Type": JSON}, _encode(teams_body(notice)))


def _title(notice: Notice) -> str:
    return " ".join(notice.subject.split()) or f"spawn-fleet-monitor: {notice.event_type}"


def _about(notice: Notice) -> str:
    """One line of context: the array, how many alerts, when, over what window."""
    parts = [notice.array_name or notice.array_id or "", notice.severity]
    if notice.kind == "alert":
        parts.append(f"{number(notice.count)} alert{'' if notice.count == 1 else 's'}")
    if notice.first_at and notice.last_at and notice.first_at != notice.last_at:
        parts.append(f"{_when(notice.first_at)} to {_when(notice.last_at)}")
    elif notice.last_at or notice.first_at:
        parts.append(_when(notice.last_at or notice.first_at))
    if notice.window_seconds:
        parts.append(f"{number(notice.window_seconds)} s window")
    return " · ".join(part for part in parts if part) or "spawn-fleet-monitor"


def _when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment
    return utc.strftime("%Y-%m-%d %H:%M:%S UTC")


def _breakdowns(notice: Notice) -> list[tuple[str, Sequence[tuple[str, int]]]]:
    shown = [(key, pairs) for key, pairs in notice.breakdowns.items() if pairs]
    return [
        (cut(key.replace("_", " ").capitalize(), ITEM_LABEL_MAX), pairs)
        for key, pairs in shown[:BREAKDOWNS_SHOWN_MAX]
    ]


def _links(notice: Notice) -> list[tuple[str, str]]:
    return [
        (cut(label, ITEM_LABEL_MAX) or url[:ITEM_LABEL_MAX], url)
        for label, url in notice.links
        if url.startswith(("https://", "http://")) and len(url) <= LINK_URL_MAX
    ]


def _mrkdwn(text: str, limit: int | None = None) -> str:
    """`text` escaped for Slack mrkdwn (https://docs.slack.dev/messaging/formatting-message-text
    #escaping), cut to `limit` without splitting an entity."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if limit is None or len(escaped) <= limit:
        return escaped
    head = escaped[: max(limit - 1, 0)]
    amp = head.rfind("&")
    if amp != -1 and ";" not in head[amp:]:
        head = head[:amp]
    return head.rstrip() + "…"


def _slack_url(url: str) -> str:
    return url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")


def _slack_section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text or "—"}}


def _slack_fact(label: str, value: str) -> str:
    head = f"*{_mrkdwn(label, FACT_LABEL_MAX)}*\n"
    return head + _mrkdwn(value, min(FACT_VALUE_MAX, SLACK_FIELD_TEXT_MAX - len(head)))


def _discord_field(name: str, value: str, *, inline: bool) -> dict[str, Any]:
    # Discord refuses an empty field name or value.
    return {
        "name": cut(name.strip(), DISCORD_FIELD_NAME_MAX) or "—",
        "value": cut(value.strip(), DISCORD_FIELD_VALUE_MAX) or "—",
        "inline": inline,
    }


def _discord_size(title: str, footer: str, fields: list[dict[str, Any]]) -> int:
    return len(title) + len(footer) + sum(len(f["name"]) + len(f["value"]) for f in fields)


def _discord_description(notice: Notice, budget: int) -> str:
    text = notice.text.strip()
    if not notice.items:
        return cut(text, budget)
    lines = [
        f"**{cut(label, ITEM_LABEL_MAX)}** {cut(body, ITEM_TEXT_MAX)}"
        for label, body in notice.items
    ]
    wanted = len("\n".join(lines)) + 2
    text = cut(text, budget - min(wanted, budget // 3)) if text else ""
    room = budget - len(text) - (2 if text else 0)
    return cut("\n\n".join(part for part in (text, fit_lines(lines, room)) if part), budget)


@dataclass(frozen=True)
class _TeamsSize:
    """How much of a notice a Teams card holds at one size."""

    text_max: int
    facts_max: int
    fact_max: int
    items_max: int
    item_max: int
    breakdowns: bool = True
    links: bool = True


_TEAMS_SIZES = (
    _TeamsSize(text_max=8000, facts_max=30, fact_max=500, items_max=50, item_max=ITEM_TEXT_MAX),
    _TeamsSize(text_max=3000, facts_max=15, fact_max=300, items_max=20, item_max=300),
    _TeamsSize(text_max=1000, facts_max=10, fact_max=150, items_max=5, item_max=150),
    _TeamsSize(text_max=400, facts_max=5, fact_max=80, items_max=0, item_max=0),
)
_TEAMS_LAST_RESORT = _TeamsSize(
    text_max=200, facts_max=0, fact_max=0, items_max=0, item_max=0, breakdowns=False, links=False
)


def _teams_message(card: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [{"contentType": TEAMS_CARD_TYPE, "contentUrl": None, "content": card}],
    }


def _teams_card(notice: Notice, size: _TeamsSize) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        _text_block(cut(_title(notice), FACT_LABEL_MAX), weight="Bolder", size="Medium")
    ]
    if notice.text.strip():
        body.append(_text_block(cut(notice.text, size.text_max)))
    if notice.facts and size.facts_max:
        shown = notice.facts[: size.facts_max]
        body.append(_fact_set([(cut(k, FACT_LABEL_MAX), cut(v, size.fact_max)) for k, v in shown]))
        if len(notice.facts) > len(shown):
            body.append(_text_block(more(len(notice.facts) - len(shown)), isSubtle=True))
    for label, pairs in _breakdowns(notice) if size.breakdowns else []:
        total = number(sum(n for _, n in pairs))
        body.append(_text_block(f"{label} ({total})", weight="Bolder", spacing="Medium"))
        body.append(_fact_set([(value, number(count)) for value, count in top_and_rest(pairs)]))
    if notice.items and size.items_max:
        shown_items = notice.items[: size.items_max]
        body.append(
            _fact_set([(cut(k, ITEM_LABEL_MAX), cut(v, size.item_max)) for k, v in shown_items])
        )
        if len(notice.items) > len(shown_items):
            body.append(_text_block(more(len(notice.items) - len(shown_items)), isSubtle=True))
    body.append(_text_block(cut(_about(notice), FACT_LABEL_MAX * 2), isSubtle=True, size="Small"))
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": TEAMS_CARD_SCHEMA,
        "version": TEAMS_CARD_VERSION,
        "body": body,
        "msteams": {"width": "Full"},
    }
    actions = [
        {"type": "Action.OpenUrl", "title": label, "url": url}
        for label, url in (_links(notice) if size.links else [])
    ]
    if actions:
        card["actions"] = actions[:TEAMS_ACTIONS_MAX]
    return card


def _text_block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _fact_set(facts: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts]}


def _webhook_details(notice: Notice) -> dict[str, Any]:
    details: dict[str, Any] = dict(notice.details)
    details.setdefault("notice_id", notice.notice_id)
    if notice.array_name:
        details.setdefault("array_name", notice.array_name)
    if notice.first_at:
        details.setdefault("first_at", notice.first_at.isoformat())
    if notice.last_at:
        details.setdefault("last_at", notice.last_at.isoformat())
    if notice.window_seconds is not None:
        details.setdefault("window_seconds", notice.window_seconds)
    if notice.breakdowns:
        details.setdefault(
            "breakdowns", {k: [list(pair) for pair in v] for k, v in notice.breakdowns.items()}
        )
    if notice.links:
        details.setdefault("links", dict(notice.links))
    return details


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, default=str, ensure_ascii=False, separators=(",", ":")).encode()


_FORMATS: dict[str, Callable[[Notice, Destination, datetime], HttpRequest]] = {
    "webhook": _webhook,
    "slack": _slack,
    "discord": _discord,
    "teams": _teams,
}

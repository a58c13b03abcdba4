"""`spawn-monitor capacity`: where to launch, by EC2's spot placement score and the
fleet's own history (SPEC §15).

Scores come from `GetSpotPlacementScores` with the operator's own credentials (and
`DescribeAvailabilityZones` to name each zone id); the history from `GET /capacity`.
Zones (or regions) are ranked by score, then by the fleet's interruptions per 100
instance-hours. When the EC2 endpoint is a local one that cannot answer (the local
stack's moto lacks the call), a sample answer in AWS's documented shape, never real
data, is used and said so (`placement_source: "sample"`). The `--json` shape is in
docs/capacity.md.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError
from rich.console import Console
from rich.table import Table

from spawn_monitor.api import Api, ApiError, is_loopback

SAMPLE = "placement_sample.json"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Scores:
    """Placement scores by (region, zone name or None), where they came from, and why
    when they are not EC2's."""

    by_place: dict[tuple[str, str | None], int]
    zone_ids: dict[tuple[str, str | None], str | None]
    source: str  # "ec2" | "sample" | "unavailable"
    note: str | None = None


def _zone_names(session: boto3.Session, region: str) -> dict[str, str]:
    ec2 = session.client("ec2", region_name=region)
    zones = ec2.describe_availability_zones(AllAvailabilityZones=False)["AvailabilityZones"]
    return {z["ZoneId"]: z["ZoneName"] for z in zones if "ZoneId" in z and "ZoneName" in z}


def _scores_from(
    session: boto3.Session, answers: Iterable[Mapping[str, Any]], by_zone: bool
) -> tuple[dict[tuple[str, str | None], int], dict[tuple[str, str | None], str | None]]:
    scores: dict[tuple[str, str | None], int] = {}
    ids: dict[tuple[str, str | None], str | None] = {}
    names: dict[str, dict[str, str]] = {}
    for answer in answers:
        region, score = str(answer.get("Region", "")), int(answer.get("Score", 0))
        zone_id = answer.get("AvailabilityZoneId")
        zone: str | None = None
        if by_zone and zone_id:
            if region not in names:
                names[region] = _zone_names(session, region)
            zone = names[region].get(str(zone_id), str(zone_id))
        place = (region, zone)
        if score >= scores.get(place, 0):
            scores[place], ids[place] = score, zone_id if by_zone else None
    return scores, ids


def placement_scores(
    session: boto3.Session,
    instance_types: Sequence[str],
    regions: Sequence[str],
    count: int,
    by_zone: bool,
) -> Scores:
    """EC2's spot placement scores for launching `count` instances of `instance_types`
    in `regions`, per zone (`by_zone`) or per region."""
    ec2 = session.client("ec2")
    try:
        pages = ec2.get_paginator("get_spot_placement_scores").paginate(
            InstanceTypes=list(instance_types),
            TargetCapacity=count,
            SingleAvailabilityZone=by_zone,
            RegionNames=list(regions),
        )
        answers = [s for page in pages for s in page.get("SpotPlacementScores", [])]
        by_place, ids = _scores_from(session, answers, by_zone)
        return Scores(by_place, ids, "ec2")
    except (ClientError, BotoCoreError, ResponseParserError) as exc:
        # moto's server answers an unimplemented call with an HTML 500 page.
        reason = " ".join(str(exc).split())[:200]
        if not is_loopback(ec2.meta.endpoint_url):
            return Scores({}, {}, "unavailable", f"GetSpotPlacementScores failed: {reason}")
    sample = json.loads(resources.files("spawn_monitor").joinpath(SAMPLE).read_text())
    wanted = set(regions)
    answers = [a for a in sample["SpotPlacementScores"] if a["Region"] in wanted]
    by_place, ids = _scores_from(session, answers, by_zone)
    note = (
        f"SAMPLE scores, not EC2's: the local endpoint {ec2.meta.endpoint_url} does not "
        f"answer GetSpotPlacementScores (moto lacks it); spawn_monitor/{SAMPLE} is used"
    )
    return Scores(by_place, ids, "sample", note)


def _region_of(zone: str, regions: Iterable[str]) -> str | None:
    for region in regions:
        if zone[:-1] == region or zone.startswith(region + "-"):
            return region
    return None


def rank(
    capacity: Iterable[Mapping[str, Any]],
    scores: Scores,
    instance_types: Sequence[str],
    regions: Sequence[str],
    by_zone: bool,
) -> list[dict[str, Any]]:
    """One row per zone (or region) with a score or fleet history, best first: by
    placement score (high first), then by interruptions per 100 instance-hours (low
    first; no history last), then by instance-hours (more first)."""
    history: dict[tuple[str, str | None], dict[str, Any]] = {}
    for entry in capacity:
        if entry.get("instance_type") not in instance_types:
            continue
        zone = str(entry.get("availability_zone"))
        region = _region_of(zone, regions)
        if region is None:
            continue
        place = (region, zone if by_zone else None)
        sums = history.setdefault(place, {"hours": 0.0, "interruptions": 0, "failures": {}})
        sums["hours"] += float(entry.get("instance_hours") or 0)
        sums["interruptions"] += int(entry.get("interruptions") or 0)
        for code, n in (entry.get("launch_failures") or {}).items():
            sums["failures"][code] = sums["failures"].get(code, 0) + int(n)
    rows = []
    for place in sorted(set(history) | set(scores.by_place), key=lambda p: (p[0], p[1] or "")):
        sums = history.get(place, {"hours": 0.0, "interruptions": 0, "failures": {}})
        hours = sums["hours"]
        rows.append(
            {
                "region": place[0],
                "availability_zone": place[1],
                "availability_zone_id": scores.zone_ids.get(place),
                "placement_score": scores.by_place.get(place),
                "instance_hours": round(hours, 3),
                "interruptions": sums["interruptions"],
                "interruptions_per_100h": (
                    round(100 * sums["interruptions"] / hours, 3) if hours > 0 else None
                ),
                "launch_failures": dict(sorted(sums["failures"].items())),
            }
        )
    _ranks(rows, "score_rank", "placement_score", reverse=True)
    _ranks(rows, "rate_rank", "interruptions_per_100h", reverse=False)
    rows.sort(
        key=lambda r: (
            -(r["placement_score"] or 0),
            math.inf if r["interruptions_per_100h"] is None else r["interruptions_per_100h"],
            -r["instance_hours"],
        )
    )
    for position, row in enumerate(rows, 1):
        row["rank"] = position
    return rows


def _ranks(rows: list[dict[str, Any]], name: str, field: str, reverse: bool) -> None:
    """Competition ranks (1, 2, 2, 4) by `field`; rows without a value get None."""
    values = sorted((r[field] for r in rows if r[field] is not None), reverse=reverse)
    for row in rows:
        value = row[field]
        row[name] = None if value is None else values.index(value) + 1


def recommendation(rows: Sequence[Mapping[str, Any]], instance_types: Sequence[str]) -> str:
    """The one-line advice: the best-ranked place, and why."""
    types = ", ".join(instance_types)
    if not rows:
        return f"No placement score or fleet history for {types} in these regions."
    best = rows[0]
    place = best["availability_zone"] or best["region"]
    why = []
    if best["placement_score"] is not None:
        why.append(f"placement score {best['placement_score']}/10")
    if best["interruptions_per_100h"] is not None:
        why.append(
            f"{best['interruptions_per_100h']:g} interruptions per 100 instance-hours over "
            f"{best['instance_hours']:g} h in the last 7 days"
        )
    else:
        why.append("no fleet history there in the last 7 days")
    return f"Launch {types} in {place}: {'; '.join(why)}."


def advise(
    api: Api,
    session: boto3.Session,
    instance_types: Sequence[str],
    regions: Sequence[str],
    count: int,
    by_zone: bool,
) -> dict[str, Any]:
    """The whole `--json` document (schema in docs/capacity.md)."""
    capacity = api.capacity()
    types = list(dict.fromkeys(instance_types)) or sorted(
        {str(e["instance_type"]) for e in capacity}
    )
    if not types:
        return {
            "schema_version": SCHEMA_VERSION,
            "instance_types": [],
            "regions": list(regions),
            "target_capacity": count,
            "by": "zone" if by_zone else "region",
            "placement_source": "unavailable",
            "placement_note": "no --type given and no fleet history to take types from",
            "ranked": [],
            "recommendation": "Give the instance types to compare with --type.",
        }
    scores = placement_scores(session, types, regions, count, by_zone)
    rows = rank(capacity, scores, types, regions, by_zone)
    return {
        "schema_version": SCHEMA_VERSION,
        "instance_types": types,
        "regions": list(regions),
        "target_capacity": count,
        "by": "zone" if by_zone else "region",
        "placement_source": scores.source,
        "placement_note": scores.note,
        "ranked": rows,
        "recommendation": recommendation(rows, types),
    }


def _cell(value: Any, suffix: str = "") -> str:
    return (
        "-" if value is None else f"{value:g}{suffix}" if isinstance(value, float) else str(value)
    )


def capacity_table(document: Mapping[str, Any]) -> Table:
    """The ranked places as a table (the recommendation goes below it)."""
    by_zone = document["by"] == "zone"
    title = (
        f"Where to launch {', '.join(document['instance_types'])} "
        f"(x{document['target_capacity']}), by {document['by']}"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("zone" if by_zone else "region")
    table.add_column("score", justify="right")
    table.add_column("inst-hours (7 d)", justify="right")
    table.add_column("interruptions", justify="right")
    table.add_column("per 100 h", justify="right")
    table.add_column("rate rank", justify="right")
    table.add_column("launch failures")
    for row in document["ranked"]:
        failures = ", ".join(f"{c} {n}" for c, n in row["launch_failures"].items()) or "-"
        table.add_row(
            str(row["rank"]),
            row["availability_zone"] or row["region"],
            "-" if row["placement_score"] is None else f"{row['placement_score']}/10",
            _cell(row["instance_hours"]),
            str(row["interruptions"]),
            _cell(row["interruptions_per_100h"]),
            _cell(row["rate_rank"]),
            failures,
        )
    return table


def run_capacity(api: Api, session: boto3.Session, args: Any, console: Console) -> int:
    """The `capacity` command: the table and the recommendation, or `--json`."""
    regions = [r.strip() for given in args.regions for r in given.split(",") if r.strip()]
    regions = list(dict.fromkeys(regions)) or ([session.region_name] if session.region_name else [])
    if not regions:
        raise ApiError("no region to score: pass --regions R (or --region, or set AWS_REGION)")
    if args.count < 1:
        raise ApiError("--count must be 1 or more")
    document = advise(api, session, args.types, regions, args.count, args.by == "zone")
    if args.json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return 0
    console.print(capacity_table(document))
    if document["placement_note"]:
        console.print(f"[yellow]Note:[/yellow] {document['placement_note']}", soft_wrap=True)
    if 0 < len(document["instance_types"]) < 3 and document["placement_source"] == "ec2":
        console.print(
            "[dim]EC2 scores one or two instance types low by design: give 3 or more "
            "--type for a useful score.[/dim]"
        )
    console.print(document["recommendation"], soft_wrap=True)
    return 0

"""The bill as ground truth (SPEC §14): Cost Explorer's figure for finished arrays.

A daily job. When `spawn:job-array-id` is an active cost allocation tag
(`ListCostAllocationTags`), one `GetCostAndUsage` (DAILY, grouped by that tag, over the
last `BILLED_LOOKBACK_DAYS` days, `NextPageToken` followed) answers for every array at
once; at most `BILLED_MAX_CALLS` requests a run, as Cost Explorer bills $0.01 each.
Each finished array in it gets a stats-table document `billed#{array_id}`: `billed_usd`,
the live estimate then and its error. `/arrays/{id}/progress` adds both to `cost`.
An answer cut short by the bound stores nothing (a partial sum would be wrong).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.contract.rows import epoch_ms, iso
from chalicelib.core.batching import chunked
from chalicelib.progress.store import SummaryStore
from chalicelib.progress.summary import progress_view

if TYPE_CHECKING:
    from mypy_boto3_ce import CostExplorerClient

logger = logging.getLogger(__name__)

ARRAY_TAG = "spawn:job-array-id"
BILLED_KEY = "billed#{array_id}"
STATUS_KEY = "billed#status"
METRIC = "UnblendedCost"
DAY = timedelta(days=1)


def billed_key(array_id: str) -> str:
    return BILLED_KEY.format(array_id=array_id)


class DocumentStore(Protocol):
    """JSON documents in the stats table (`chalicelib.fleet.stats.Stats`)."""

    def get_document(self, key: str) -> dict[str, Any] | None: ...

    def put_document(self, key: str, document: Mapping[str, Any]) -> None: ...

    def write_documents(
        self, documents: Mapping[str, Mapping[str, Any]], deleted: Iterable[str] = ()
    ) -> None: ...


@dataclass
class BilledReport:
    """What one run did: Cost Explorer requests made, arrays stored, and why it stopped."""

    tag_active: bool | None = None
    calls: int = 0
    arrays_billed: int = 0
    arrays_stored: int = 0
    truncated: bool = False
    error: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)


def tag_status(ce: CostExplorerClient) -> str | None:
    """`Active`, `Inactive`, or None when Cost Explorer has never seen the tag."""
    response = ce.list_cost_allocation_tags(TagKeys=[ARRAY_TAG], Type="UserDefined")
    for tag in response.get("CostAllocationTags", []):
        if tag.get("TagKey") == ARRAY_TAG:
            return str(tag.get("Status"))
    return None


def billed_by_array(pages: Iterable[Mapping[str, Any]]) -> dict[str, Decimal]:
    """Σ `UnblendedCost` per array over every day of every page. Groups are keyed
    `spawn:job-array-id$VALUE`; untagged cost (an empty value) and amounts that do not
    parse are left out (logged)."""
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for page in pages:
        for day in page.get("ResultsByTime", []):
            for group in day.get("Groups", []):
                keys = group.get("Keys") or [""]
                _, _, array_id = str(keys[0]).partition("$")
                if not array_id:
                    continue
                amount = group.get("Metrics", {}).get(METRIC, {}).get("Amount")
                try:
                    value = Decimal(str(amount))
                except (InvalidOperation, ValueError):
                    logger.error("unusable Cost Explorer amount", extra={"array_id": array_id})
                    continue
                if value.is_finite():
                    sums[array_id] += value
    return dict(sums)


def _number(value: Any) -> float | None:
    """A finite number as a float, else None (bools and strings included)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def error_percent(estimate: float | None, billed: float) -> float | None:
    """(estimate - billed) / billed * 100, or None without an estimate or a bill."""
    if estimate is None or billed <= 0:
        return None
    return round((estimate - billed) / billed * 100, 2)


def with_billed(view: dict[str, Any], billed: Mapping[str, Any] | None) -> dict[str, Any]:
    """The progress body with `billed_usd` and `billed_error_percent` in its `cost`,
    once known. A body without `cost` is returned unchanged."""
    cost = view.get("cost")
    billed_usd = _number(billed.get("billed_usd")) if billed else None
    if not isinstance(cost, dict) or billed is None or billed_usd is None:
        return view
    estimate = _number(cost.get("usd"))
    return {
        **view,
        "cost": {
            **cost,
            "billed_usd": billed_usd,
            "billed_error_percent": error_percent(estimate, billed_usd),
            "billed_as_of": billed.get("as_of"),
        },
    }


def billed_view(
    view: dict[str, Any], billed: Callable[[str], Mapping[str, Any] | None] | None
) -> dict[str, Any]:
    """`with_billed` for the progress route: the bill is read (one GetItem) only for a
    finished array whose body has a `cost`, the only ones the job stores."""
    if billed is None or view.get("finished_at") is None or not isinstance(view.get("cost"), dict):
        return view
    try:
        found = billed(str(view["array_id"]))
    except (ClientError, BotoCoreError) as exc:  # an optional figure: the body stands
        logger.warning("billed figure unreadable", extra={"error": type(exc).__name__})
        return view
    return with_billed(view, found)


class BilledCosts:
    """The daily Cost Explorer run and the stored figures.

    Args:
        ce: a Cost Explorer client.
        store: the arrays table (which arrays are finished, their live estimate).
        documents: the stats table, where `billed#{array_id}` documents are kept.
        array_info: (name, declared size) of an array, as the progress route reads it.
        lookback_days: `BILLED_LOOKBACK_DAYS`, the window asked for, ending today.
        max_calls: `BILLED_MAX_CALLS`, Cost Explorer requests per run (each $0.01).
        stall_after: `STALL_AFTER_SECONDS`, for the view the estimate is read from.
        costs: the arrays' cost documents (`CostStore.array_costs`), whose `usd` is the
            live estimate set beside the bill.

    Example:
        >>> BilledCosts(ce, store, stats, stats.array_info).run(now).arrays_stored
        3
    """

    def __init__(
        self,
        ce: CostExplorerClient,
        store: SummaryStore,
        documents: DocumentStore,
        array_info: Callable[[str], tuple[str | None, int | None] | None],
        lookback_days: int = 14,
        max_calls: int = 5,
        stall_after: int = 600,
        costs: Callable[[Iterable[str]], Mapping[str, Mapping[str, Any]]] | None = None,
    ) -> None:
        self.ce = ce
        self.store = store
        self.documents = documents
        self.array_info = array_info
        self.lookback_days = max(1, lookback_days)
        self.max_calls = max(2, max_calls)
        self.stall_after = stall_after
        self.costs = costs

    def stored(self, array_id: str) -> dict[str, Any] | None:
        """The billed document of one array, or None (one GetItem)."""
        return self.documents.get_document(billed_key(array_id))

    def run(self, now: datetime) -> BilledReport:
        """Check the tag, read the bill, store the figures of finished arrays."""
        report = BilledReport()
        try:
            report.calls += 1
            status = tag_status(self.ce)
        except (ClientError, BotoCoreError) as exc:
            report.error = f"ListCostAllocationTags failed: {type(exc).__name__}"
            logger.error("cost allocation tag status unknown", extra={"error": report.error})
            return self._done(report, now)
        report.tag_active = status == "Active"
        if not report.tag_active:
            logger.info(
                "spawn:job-array-id is not an active cost allocation tag: no bill read",
                extra={"status": status},
            )
            return self._done(report, now)
        end = now.date()
        start = end - timedelta(days=self.lookback_days)
        try:
            pages = self._pages(start.isoformat(), end.isoformat(), report)
        except (ClientError, BotoCoreError) as exc:
            report.error = f"GetCostAndUsage failed: {type(exc).__name__}"
            logger.error("Cost Explorer read failed", extra={"error": report.error})
            return self._done(report, now)
        if report.truncated:
            logger.error(
                "Cost Explorer answer needs more requests than BILLED_MAX_CALLS allows; "
                "nothing stored (lower BILLED_LOOKBACK_DAYS or raise BILLED_MAX_CALLS)",
                extra={"calls": report.calls},
            )
            return self._done(report, now)
        billed = billed_by_array(pages)
        report.arrays_billed = len(billed)
        window_start_ms = epoch_ms(datetime.combine(start, datetime.min.time(), now.tzinfo))
        documents = self._documents(billed, now, window_start_ms, report)
        self.documents.write_documents(documents)
        report.arrays_stored = len(documents)
        return self._done(report, now)

    def _pages(self, start: str, end: str, report: BilledReport) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "TimePeriod": {"Start": start, "End": end},
            "Granularity": "DAILY",
            "Metrics": [METRIC],
            "GroupBy": [{"Type": "TAG", "Key": ARRAY_TAG}],
        }
        pages: list[dict[str, Any]] = []
        while True:
            if report.calls >= self.max_calls:
                report.truncated = True
                return pages
            report.calls += 1
            page = dict(self.ce.get_cost_and_usage(**request))
            pages.append(page)
            token = page.get("NextPageToken")
            if not token:
                return pages
            request["NextPageToken"] = token

    def _documents(
        self,
        billed: Mapping[str, Decimal],
        now: datetime,
        window_start_ms: int,
        report: BilledReport,
    ) -> dict[str, dict[str, Any]]:
        """One document per billed array that has finished and started inside the
        window (else the bill would hold only part of it)."""
        documents: dict[str, dict[str, Any]] = {}
        for chunk in chunked(sorted(billed), 100):
            summaries = self.store.get_many(list(chunk))
            costs = {} if self.costs is None else self.costs(chunk)
            for array_id in chunk:
                summary = summaries.get(array_id)
                if summary is None or summary.finished_at_ms is None:
                    report.skipped["unfinished"] = report.skipped.get("unfinished", 0) + 1
                    continue
                if (summary.first_update_ms or 0) < window_start_ms:
                    report.skipped["before_window"] = report.skipped.get("before_window", 0) + 1
                    continue
                view = progress_view(
                    summary,
                    self.array_info(array_id),
                    now,
                    self.stall_after,
                    cost=costs.get(array_id),
                )
                cost = view.get("cost")
                usd = cost.get("usd") if isinstance(cost, Mapping) else None
                estimate = _number(usd)
                billed_usd = float(round(billed[array_id], 6))
                documents[billed_key(array_id)] = {
                    "array_id": array_id,
                    "billed_usd": billed_usd,
                    "estimate_usd": estimate,
                    "error_percent": error_percent(estimate, billed_usd),
                    "as_of": iso(now),
                }
        return documents

    def _done(self, report: BilledReport, now: datetime) -> BilledReport:
        """Remember the run (what `doctor` and operators read), then return it."""
        self.documents.put_document(
            STATUS_KEY,
            {
                "at": iso(now),
                "tag_active": report.tag_active,
                "calls": report.calls,
                "arrays_stored": report.arrays_stored,
                "truncated": report.truncated,
                "error": report.error,
            },
        )
        return report

"""Text pieces every chat format shares: counts, cuts, "top N and the rest", line budgets.

A breakdown is shown as its few highest values and then one "… and K more" row with the
rest's count, so the counts shown still add up to the notice's count; a list of lines is
kept to a character budget by whole lines, ending in "… and K more" when some are left.

    >>> top_and_rest([("us-east-1a", 1200), ("b", 3), ("c", 2), ("d", 1)], top=2)
    [('us-east-1a', 1200), ('b', 3), ('… and 2 more', 3)]
"""

from __future__ import annotations

from collections.abc import Sequence

# Values per breakdown shown before the "… and K more" row.
BREAKDOWN_TOP = 5
# A breakdown's value (a zone, an instance type, an error code) is cut to this many
# characters, so a breakdown of six rows always fits a 1,024-character Discord field.
BREAKDOWN_VALUE_MAX = 100
ELLIPSIS = "…"


def number(n: int) -> str:
    """`n` with thousands separators: 1234567 -> '1,234,567'."""
    return f"{n:,}"


def cut(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, ending in an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + ELLIPSIS


def more(k: int) -> str:
    """The label of the row that stands for `k` values or lines not shown."""
    return f"{ELLIPSIS} and {number(k)} more"


def top_and_rest(
    pairs: Sequence[tuple[str, int]],
    top: int = BREAKDOWN_TOP,
    value_max: int = BREAKDOWN_VALUE_MAX,
) -> list[tuple[str, int]]:
    """The `top` highest (value, count) pairs, values cut to `value_max`, then one
    ("… and K more", their total) pair for the rest; a single rest value is shown as is.
    The counts returned add up to the counts given."""
    shown = list(pairs) if len(pairs) <= top + 1 else list(pairs[:top])
    rows = [(cut(value, value_max), count) for value, count in shown]
    rest = pairs[len(shown) :]
    if rest:
        rows.append((more(len(rest)), sum(count for _, count in rest)))
    return rows


def fit_lines(lines: Sequence[str], limit: int, sep: str = "\n") -> str:
    """`lines` joined by `sep` in at most `limit` characters: as many whole lines as fit,
    then "… and K more" for the rest. A line longer than the budget is cut."""
    joined = sep.join(lines)
    if len(joined) <= limit:
        return joined
    reserve = len(sep) + len(more(len(lines)))
    kept: list[str] = []
    used = 0
    for line in lines:
        need = used + (len(sep) if kept else 0) + len(line)
        if need + reserve > limit:
            break
        kept.append(line)
        used = need
    if not kept and lines:
        # Not even the first line fits whole: show its start rather than nothing.
        kept.append(cut(lines[0], max(limit - reserve, 1)))
    rest = len(lines) - len(kept)
    return cut(sep.join([*kept, more(rest)] if rest else kept), limit)

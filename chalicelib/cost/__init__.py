"""Cost per array (SPEC §14): billing rules, prices, billable runs and the accrual.

`billing` holds AWS's billing rules (pure), `prices` where prices come from (Price List
API, spot price history, a cache in the stats table, the shipped snapshot), `runs` the
billable runs recorded on registry rows, and `accrual` the figures the fleet tick
stores for each array and the fleet. Details: docs/cost.md.
"""

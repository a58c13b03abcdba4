"""What each setting means, for the settings page; names and defaults come from the code.

The build fails when a setting of `Settings` has no entry here, or an entry names no
setting, so a new setting cannot reach a release undocumented.
"""

from __future__ import annotations

SETTING_MEANINGS = {
    "PROGRESS_TABLE": (
        "the workers' progress table "
        "([contract §4](contract.md#4-progress-table-written-by-workers))"
    ),
    "INSTANCES_TABLE": "instance registry (state, tags, health, interruptions)",
    "ARRAYS_TABLE": "one progress summary per array",
    "ALERT_HISTORY_TABLE": "alarm state changes seen on the topics",
    "STATS_TABLE": (
        "interruption counters, fleet snapshots (the fleet's and each owner's), array "
        "names, sizes and owners (index `owner-arrays`), array history, the alarm budget"
    ),
    "ALERTS_TOPIC": "the alerts topic's name (or ARN)",
    "CRITICAL_TOPIC": "the critical topic's name (or ARN)",
    "LIFECYCLE_QUEUE": "the buffer between EventBridge and `lifecycle`",
    "MANAGED_TAG_KEYS": "a tag of one of these keys set to `true` makes an instance managed",
    "OPT_OUT_TAG": "set to `off`, opts an instance out",
    "ALARM_API_TPS": (
        "the account's `PutMetricAlarm` (and `DeleteAlarms`) quota, one budget shared by "
        "every alarm writer in every process (see "
        "[one budget](architecture.md#one-alarm-budget-for-the-account))"
    ),
    "ALARM_MODE": (
        "`per-instance`: two alarms per running managed instance; `fleet-query`: two "
        "Metrics Insights alarms for the whole fleet (see [Alarm modes](alarm-modes.md))"
    ),
    "RECONCILE_GRACE_SECONDS": (
        "the reconciler leaves an instance's alarms to the lifecycle this long after its "
        "run starts, plus the time the lifecycle needs to drain its queue"
    ),
    "LIFECYCLE_MAX_CONCURRENCY": "copies of `lifecycle` at once (the SQS source's maximum)",
    "STALL_AFTER_SECONDS": "a running worker silent this long is stalled",
    "FAILED_ALERT_PERCENT": "failed share of an array that raises `array_failing`",
    "RECOUNT_EVERY_SECONDS": "how often each array is recounted from its rows",
    "UNHEALTHY_PERCENT_THRESHOLD": "`spawn-fleet-unhealthy`'s threshold (percent of the fleet)",
    "DAILY_COST_LIMIT_USD": "`spawn-daily-cost-limit`'s threshold (estimated charges, USD)",
    "BILLED_LOOKBACK_DAYS": "days of Cost Explorer's bill the daily `billed_costs` job reads",
    "BILLED_MAX_CALLS": "Cost Explorer requests a `billed_costs` run may make ($0.01 each)",
    "LOG_RETENTION_DAYS": "must equal the stages' `log_retention_in_days` (a test checks)",
    "ALERT_RETENTION_DAYS": "alert history TTL",
    "ENABLE_RECOVER_ACTION": "add EC2's recover action to the system-check alarm",
    "COUNT_UNMANAGED_INTERRUPTIONS": (
        "count unmanaged instances' interruptions in the fleet figure"
    ),
    "CURSOR_SECRET_ID": "Secrets Manager secret that signs cursors",
    "API_ISOLATION": (
        "`iam`: each caller sees only their own instances' data (see "
        "[Per-user isolation](api.md#per-user-isolation)); `off`: everyone sees "
        "everything (the local stack only)"
    ),
    "FLEET_READERS": (
        "comma-separated IAM principal ARNs that see the whole fleet; a role ARN covers "
        "all its sessions"
    ),
    "ARRAY_DASHBOARD_RETENTION_HOURS": (
        "a finished array's dashboard is removed this long after it finished"
    ),
    "LOW_THROUGHPUT_TASKS_PER_MINUTE": "`spawn-low-throughput`'s floor, fleet-wide",
    "WORKER_LOG_RETENTION_DAYS": (
        "retention of `/aws/spawn/workers` and `/aws/spawn/spored` (a value CloudWatch "
        "Logs accepts)"
    ),
    "ERROR_LOG_RETENTION_DAYS": "retention of `/aws/spawn/errors`",
    "BILLING_ALARM_TOPIC": (
        "topic of the us-east-1 billing alarms: `auto` (the stack's topics when it runs "
        "in us-east-1, else none) or a us-east-1 topic ARN"
    ),
    "CONSOLE_SKIP_CALLS": (
        "API names the endpoint lacks; setup neither reads nor writes them (the local "
        "stack's moto; `GetTelemetryEnrichmentStatus` and `DescribeAlarmContributors` "
        "there are reported as unchecked)"
    ),
    "COUNT_UNTAGGED_LAUNCH_FAILURES": (
        "count failed launches without a `spawn:job-array-id` tag fleet-wide "
        "([launch failures](launch-failures.md)); `false` ignores them"
    ),
    "LAUNCH_FAILURE_ALERT_DELAY_SECONDS": (
        "`array_launch_failures` waits this long after a window's first failure of a "
        "code, so it carries the burst's count"
    ),
    "ARRAY_BUDGET_USD": (
        "an array's budget in USD when none of its members carries `spawn:cost-limit` (0: none)"
    ),
    "PRICING_REGION": (
        "where the Price List API is called (its endpoints: us-east-1, eu-central-1, ap-south-1)"
    ),
    "PRICES_FROM": (
        "`api` (Price List API and spot price history, the snapshot as fallback) or "
        "`snapshot` (the shipped price snapshot only: the local stack)"
    ),
    "NOTIFY_SECRET_ID": (
        "the Secrets Manager secret holding the chat destinations "
        "([notifications](notifications.md))"
    ),
    "NOTIFY_WINDOW_SECONDS": (
        "alerts of one array and kind within this many seconds become one message (at most 300)"
    ),
    "NOTIFY_QUEUE": "the buffer between the alert topics and the rollup (`notify_intake`)",
    "NOTIFY_DELIVER_QUEUE": "one message per (notice, destination), posted by `notify_deliver`",
    "NOTIFY_FAILED_QUEUE": "deliveries that failed `NOTIFY_MAX_ATTEMPTS` times",
    "NOTIFY_MAX_ATTEMPTS": "tries per delivery before it goes to the failed queue",
    "NOTIFY_TIMEOUT_SECONDS": "how long one post to a destination may take",
}

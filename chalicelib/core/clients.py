"""The one place that makes AWS clients.

Every client gets adaptive retries (client-side rate limiting that backs off on
`Throttling`/`ThrottlingException`, which CloudWatch's alarm APIs return at a few
TPS) and bounded timeouts. The endpoint comes from the environment: boto3 honours
`AWS_ENDPOINT_URL`, which the local stack and the tests point at moto.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_ce import CostExplorerClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_observabilityadmin import CloudWatchObservabilityAdminServiceClient
    from mypy_boto3_pricing import PricingClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

# A secret is re-read this often, so a rotation takes effect without a cold start.
SECRET_MAX_AGE_SECONDS = 300
# AWS/Billing metrics exist only here, so the billing alarms live here too.
BILLING_REGION = "us-east-1"
RETRY_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 10},
    connect_timeout=5,
    read_timeout=20,
)


class Clients:
    """Lazily built, shared boto3 clients.

    Args:
        session: the boto3 session to build from (default: a new one using the
            environment's region and credentials).
        config: botocore config for every client (default: `RETRY_CONFIG`).

    Example:
        >>> clients = Clients()
        >>> clients.cloudwatch.describe_alarms(AlarmNamePrefix="spawn-instance-")
    """

    def __init__(self, session: boto3.Session | None = None, config: Config | None = None):
        self._session = session or boto3.Session()
        self._config = config or RETRY_CONFIG

    def _make(self, service: str) -> Any:
        return self._session.client(service, config=self._config)  # type: ignore[call-overload]

    @cached_property
    def cloudwatch(self) -> CloudWatchClient:
        return self._make("cloudwatch")  # type: ignore[no-any-return]

    @cached_property
    def billing_cloudwatch(self) -> CloudWatchClient:
        """CloudWatch in us-east-1 (billing metrics and alarms), whatever the region;
        the same client as `cloudwatch` when the stack runs there."""
        if self.region == BILLING_REGION:
            return self.cloudwatch
        return self._session.client("cloudwatch", region_name=BILLING_REGION, config=self._config)

    def pricing(self, region: str) -> PricingClient:
        """The Price List API, whose endpoints are in a few regions only
        (`PRICING_REGION`)."""
        return self._session.client("pricing", region_name=region, config=self._config)

    @cached_property
    def ce(self) -> CostExplorerClient:
        """Cost Explorer, whose one endpoint is in us-east-1, whatever the region."""
        return self._session.client("ce", region_name=BILLING_REGION, config=self._config)

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        return self._make("dynamodb")  # type: ignore[no-any-return]

    @cached_property
    def ec2(self) -> EC2Client:
        return self._make("ec2")  # type: ignore[no-any-return]

    @cached_property
    def logs(self) -> CloudWatchLogsClient:
        return self._make("logs")  # type: ignore[no-any-return]

    @cached_property
    def secretsmanager(self) -> SecretsManagerClient:
        return self._make("secretsmanager")  # type: ignore[no-any-return]

    @cached_property
    def secrets(self) -> Secrets:
        return Secrets(self.secretsmanager)

    def secret(self, secret_id: str, max_age: int = SECRET_MAX_AGE_SECONDS) -> str:
        """A secret's value, cached for `max_age` seconds (cursors need it on every
        request; a rotated value is read within `max_age`)."""
        return str(self.secrets.get(secret_id, max_age=max_age))

    @cached_property
    def sns(self) -> SNSClient:
        return self._make("sns")  # type: ignore[no-any-return]

    @cached_property
    def sqs(self) -> SQSClient:
        return self._make("sqs")  # type: ignore[no-any-return]

    @cached_property
    def observabilityadmin(self) -> CloudWatchObservabilityAdminServiceClient:
        return self._make("observabilityadmin")  # type: ignore[no-any-return]

    @cached_property
    def sts(self) -> STSClient:
        return self._make("sts")  # type: ignore[no-any-return]

    @cached_property
    def account_id(self) -> str:
        """This account's id (one STS call per process, which needs no IAM permission)."""
        return self.sts.get_caller_identity()["Account"]

    @property
    def region(self) -> str:
        """The region from the environment (Lambda always sets `AWS_REGION`)."""
        if not self._session.region_name:
            raise RuntimeError("no AWS region: set AWS_REGION or AWS_DEFAULT_REGION")
        return self._session.region_name

    def topic_arn(self, topic: str) -> str:
        """The ARN of an SNS topic given by name (an ARN passes through unchanged)."""
        if topic.startswith("arn:"):
            return topic
        partition = self._session.get_partition_for_region(self.region)
        return f"arn:{partition}:sns:{self.region}:{self.account_id}:{topic}"


class Secrets(SecretsProvider):
    """Powertools' secrets provider (its cache and `max_age`) on our client.

    The one call it makes is written here, with a typed client, so the IAM policy
    derived from the code's calls (`infra/aws_calls.py`) still finds `GetSecretValue`.
    """

    def __init__(self, client: SecretsManagerClient) -> None:
        super().__init__(boto3_client=client)
        self._secretsmanager = client

    def _get(self, name: str, **sdk_options: Any) -> str:
        return self._secretsmanager.get_secret_value(SecretId=name)["SecretString"]

"""Who am I (SPEC §12): spawn's environment, else IMDSv2 (tags in metadata), else EC2
`DescribeTags` with the instance's own id; cached; the environment always wins."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.kit.conftest import Aws, Imds, rows, run_kit

AMI = "ami-12c6146b"
IDENTITY_VARIABLES = (
    "JOB_ARRAY_ID",
    "JOB_ARRAY_INDEX",
    "TASK_ARRAY_INDEX",
    "SPAWN_INSTANCE_ID",
    "SPAWN_HOSTNAME",
    "AWS_EC2_METADATA_DISABLED",
)


def on_ec2(kit_env: dict[str, str], endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in kit_env.items() if k not in IDENTITY_VARIABLES}
    return {**env, "AWS_EC2_METADATA_SERVICE_ENDPOINT": endpoint}


def metadata(instance_id: str, tags: dict[str, str] | None) -> dict[str, str]:
    paths = {
        "instance-id": instance_id,
        "local-hostname": "ip-10-1-2-3.ec2.internal",
        "placement/region": "us-east-1",
    }
    if tags is not None:
        paths["tags/instance"] = "\n".join(tags)
        paths.update({f"tags/instance/{k}": v for k, v in tags.items()})
    return paths


def identity(env: dict[str, str]) -> dict[str, Any]:
    result = run_kit(env, "identity")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_tags_in_instance_metadata_over_imdsv2_and_cached(
    aws: Aws, kit_env: dict[str, str], imds: tuple[Imds, str]
) -> None:
    service, endpoint = imds
    tags = {
        "Name": "train-3",
        "spawn:job-array-id": "train-20260127-0a1b2c",
        "spawn:job-array-index": "3",
    }
    service.paths = metadata("i-0aaaaaaaaaaaaaaaa", tags)
    env = on_ec2(kit_env, endpoint)

    assert identity(env) == {
        "array_id": "train-20260127-0a1b2c",
        "array_index": 3,
        "instance_id": "i-0aaaaaaaaaaaaaaaa",
        "hostname": "ip-10-1-2-3.ec2.internal",
        "region": "us-east-1",
    }
    assert service.requests[0] == "PUT /latest/api/token"
    assert service.refused == 0
    asked = len(service.requests)
    result = run_kit(env, "progress", "--status", "completed", "--tasks", "3")
    assert (result.returncode, result.stderr) == (0, "")
    assert len(service.requests) == asked  # cached for this boot
    [row] = rows(aws)
    assert row["array_id"] == {"S": "train-20260127-0a1b2c"}
    assert row["task_index"] == {"N": "3"}
    assert row["instance_id"] == {"S": "i-0aaaaaaaaaaaaaaaa"}
    assert row["hostname"] == {"S": "ip-10-1-2-3.ec2.internal"}


def test_without_tags_in_metadata_the_tags_come_from_ec2(
    aws: Aws, kit_env: dict[str, str], imds: tuple[Imds, str]
) -> None:
    [instance] = aws.client("ec2").run_instances(
        ImageId=AMI,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": "spawn:job-array-id", "Value": "sweep-20260127-00ff00"},
                    {"Key": "spawn:job-array-index", "Value": "11"},
                ],
            }
        ],
    )["Instances"]
    service, endpoint = imds
    service.paths = metadata(instance["InstanceId"], tags=None)  # tags/instance: 404

    found = identity(on_ec2(kit_env, endpoint))

    assert (found["array_id"], found["array_index"]) == ("sweep-20260127-00ff00", 11)
    assert found["instance_id"] == instance["InstanceId"]


def test_the_environment_wins_over_metadata(
    kit_env: dict[str, str], imds: tuple[Imds, str]
) -> None:
    service, endpoint = imds
    tags = {"spawn:job-array-id": "train-20260127-0a1b2c", "spawn:job-array-index": "3"}
    service.paths = metadata("i-0aaaaaaaaaaaaaaaa", tags)
    env = {**on_ec2(kit_env, endpoint), "TASK_ARRAY_INDEX": "9", "SPAWN_HOSTNAME": "box"}

    found = identity(env)

    assert (found["array_id"], found["array_index"]) == ("train-20260127-0a1b2c", 9)
    assert found["hostname"] == "box"


def test_off_ec2_without_spawn_variables_progress_explains_and_exits_0(
    aws: Aws, kit_env: dict[str, str]
) -> None:
    env = on_ec2(kit_env, "http://127.0.0.1:9/")  # nothing listens there

    result = run_kit(env, "progress", "--status", "running")

    assert result.returncode == 0
    assert "cannot tell this worker's array id" in result.stderr
    assert "instance id (SPAWN_INSTANCE_ID or instance metadata)" in result.stderr
    assert "Traceback" not in result.stderr
    assert rows(aws) == []

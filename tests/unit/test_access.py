"""The identity rule and the viewer (chalicelib.core.access): pure, no AWS."""

from __future__ import annotations

import pytest

from chalicelib.core.access import (
    EVERYTHING,
    NoIdentity,
    Viewer,
    check_readers,
    owner_key,
    parse_principal,
    reader_matches,
    viewer_for,
)
from chalicelib.core.settings import Settings, SettingsError

ACCOUNT = "123456789012"
ALICE_SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev/alice@example.com"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"


@pytest.mark.parametrize(
    ("value", "key"),
    [
        # An IAM user: the path is dropped and the name folded (IAM names are unique in
        # an account whatever the path, and regardless of case).
        (f"arn:aws:iam::{ACCOUNT}:user/bob", f"arn:aws:iam::{ACCOUNT}:user/bob"),
        (f"arn:aws:iam::{ACCOUNT}:user/team/render/Bob", f"arn:aws:iam::{ACCOUNT}:user/bob"),
        (f"arn:aws:iam::{ACCOUNT}:role/ops/FleetOps", f"arn:aws:iam::{ACCOUNT}:role/fleetops"),
        # An assumed-role session: role folded, session kept exactly.
        (ALICE_SESSION, f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice@example.com"),
        (
            f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev/Alice@Example.com",
            f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/Alice@Example.com",
        ),
        (f"arn:aws:iam::{ACCOUNT}:root", f"arn:aws:iam::{ACCOUNT}:root"),
        (
            f"arn:aws:sts::{ACCOUNT}:federated-user/Carol",
            f"arn:aws:sts::{ACCOUNT}:federated-user/Carol",
        ),
        (
            "arn:aws-cn:iam::123456789012:user/Dan",
            "arn:aws-cn:iam::123456789012:user/dan",
        ),
        ("  " + BOB + "\n", BOB),
        # Not a principal ARN: kept as is, so it can only ever equal itself.
        ("alice", "alice"),
        (f"arn:aws:sts::{ACCOUNT}:user/moto", f"arn:aws:sts::{ACCOUNT}:user/moto"),
        (
            f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-1",
            f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-1",
        ),
        (None, None),
        ("", None),
        ("   ", None),
    ],
)
def test_owner_key_normalises_identities(value: str | None, key: str | None) -> None:
    assert owner_key(value) == key


def test_what_spawn_writes_and_what_api_gateway_says_compare_equal() -> None:
    # spawn tags `GetCallerIdentity().Arn`; API Gateway puts the same ARN in userArn.
    assert owner_key(ALICE_SESSION) == owner_key(ALICE_SESSION)
    # Two sessions of one role are two people.
    other = ALICE_SESSION.replace("alice@", "mallory@")
    assert owner_key(other) != owner_key(ALICE_SESSION)
    # The same name in another account, or another partition, is someone else.
    assert owner_key(BOB) != owner_key(BOB.replace(ACCOUNT, "210987654321"))
    assert owner_key(BOB) != owner_key(BOB.replace("arn:aws:", "arn:aws-us-gov:"))
    # A user and a role of the same name are different principals.
    assert owner_key(BOB) != owner_key(BOB.replace(":user/", ":role/"))


@pytest.mark.parametrize(
    "arn",
    [
        f"arn:aws:iam::{ACCOUNT}:user/",
        f"arn:aws:iam::{ACCOUNT}:user//bob",
        f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev",
        f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev/a/b",
        f"arn:aws:iam::{ACCOUNT}:group/admins",
        f"arn:aws:iam::{ACCOUNT}:rootx",
        "arn:aws:iam::12345:user/bob",
        f"arn:aws:iam:us-east-1:{ACCOUNT}:user/bob",
        "not an arn",
    ],
)
def test_only_principal_arns_parse(arn: str) -> None:
    assert parse_principal(arn) is None


def test_a_role_reader_covers_every_session_of_that_role_only() -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/platform/FleetOps"
    assert reader_matches(role, f"arn:aws:sts::{ACCOUNT}:assumed-role/FleetOps/oncall")
    assert reader_matches(role, f"arn:aws:sts::{ACCOUNT}:assumed-role/fleetops/x")
    assert not reader_matches(role, f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev/oncall")
    assert not reader_matches(role, "arn:aws:sts::999999999999:assumed-role/FleetOps/oncall")
    assert not reader_matches(role, f"arn:aws:iam::{ACCOUNT}:user/FleetOps")


def test_a_session_or_user_reader_covers_only_itself() -> None:
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev/oncall"
    assert reader_matches(session, session)
    assert not reader_matches(session, f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev/other")
    assert reader_matches(f"arn:aws:iam::{ACCOUNT}:user/ops/Bob", BOB)
    assert not reader_matches("bob", "bob")  # not ARNs: never a reader


def test_viewer_of_an_owner_sees_only_their_own() -> None:
    viewer = viewer_for({"userArn": ALICE_SESSION}, "iam", [BOB])
    assert not viewer.everything
    assert viewer.may_see(owner_key(ALICE_SESSION))
    assert not viewer.may_see(owner_key(BOB))
    assert not viewer.may_see(None)  # unowned arrays: readers only


def test_readers_and_isolation_off_see_everything() -> None:
    assert viewer_for({"userArn": BOB}, "iam", [BOB]) == EVERYTHING
    assert viewer_for(None, "off", []) == EVERYTHING
    assert EVERYTHING.may_see(None)
    assert EVERYTHING.may_see("anyone")


@pytest.mark.parametrize(
    "identity",
    [None, {}, {"sourceIp": "127.0.0.1"}, {"userArn": None}, {"userArn": ""}, {"userArn": 7}],
)
def test_no_identity_sees_nothing_when_isolation_is_on(identity: object) -> None:
    with pytest.raises(NoIdentity):
        viewer_for(identity, "iam", [BOB])  # type: ignore[arg-type]


def test_cursor_scopes_differ_per_caller_and_hide_the_arn() -> None:
    alice = viewer_for({"userArn": ALICE_SESSION}, "iam", [])
    bob = viewer_for({"userArn": BOB}, "iam", [])
    assert len({alice.scope, bob.scope, EVERYTHING.scope}) == 3
    assert "alice" not in alice.scope
    assert Viewer(everything=False, owner=alice.owner).scope == alice.scope


def test_readers_are_checked_when_settings_are_read() -> None:
    settings = Settings.from_env(
        {"FLEET_READERS": f"{BOB}, arn:aws:iam::{ACCOUNT}:role/FleetOps", "API_ISOLATION": "iam"}
    )
    assert settings.fleet_readers == (BOB, f"arn:aws:iam::{ACCOUNT}:role/FleetOps")
    assert Settings.from_env({}).api_isolation == "iam"  # fail closed by default
    assert Settings.from_env({}).fleet_readers == ()
    # A name with a comma splits into a part that is no ARN: refused at start.
    with pytest.raises(SettingsError, match="FLEET_READERS"):
        Settings.from_env({"FLEET_READERS": f"arn:aws:iam::{ACCOUNT}:user/a,b"})
    with pytest.raises(SettingsError, match="FLEET_READERS"):
        Settings.from_env({"FLEET_READERS": "alice"})
    with pytest.raises(SettingsError, match="API_ISOLATION"):
        Settings.from_env({"API_ISOLATION": "none"})
    with pytest.raises(ValueError, match="group"):
        check_readers([f"arn:aws:iam::{ACCOUNT}:group/admins"])

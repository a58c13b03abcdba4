"""Per-user isolation of the HTTP API (SPEC §7): who is asking, and what they may see.

spawn tags every instance it launches with `spawn:iam-user`, the launching principal's
ARN (from `sts:GetCallerIdentity`). API Gateway, with IAM authorization, puts the
caller's ARN in the request context (`identity.userArn`). Both go through `owner_key`,
and a caller sees an array, instance or alert exactly when the keys are equal, unless
the caller is a fleet-wide reader (`FLEET_READERS`) or isolation is off
(`API_ISOLATION=off`, the local stack), when they see everything.

The identity rule (`owner_key`), applied to both sides:

* `arn:P:iam::A:user/PATH/NAME` → `arn:P:iam::A:user/name`: IAM user names are unique
  in an account whatever their path, and unique regardless of case, so dropping the path
  and folding the case never merges two principals (and a reader ARN typed with another
  case or path still matches).
* `arn:P:iam::A:role/PATH/NAME` → `arn:P:iam::A:role/name`, likewise.
* `arn:P:sts::A:assumed-role/ROLE/SESSION` → the role name folded, the session kept
  exactly: a session of a shared role (an SSO permission set, say) is one person, so
  the owner of an instance launched through a role is the role *and* the session.
* anything else (root, federated users, a value that is not an ARN) is compared
  exactly, after trimming spaces.

A reader entry matches a caller whose key equals its own; a reader entry naming a role
(`arn:P:iam::A:role/NAME`) also matches every session of that role.

Example:
    >>> owner_key("arn:aws:iam::123456789012:user/team/Alice")
    'arn:aws:iam::123456789012:user/alice'
    >>> owner_key("arn:aws:sts::123456789012:assumed-role/Dev/alice@example.com")
    'arn:aws:sts::123456789012:assumed-role/dev/alice@example.com'
    >>> viewer = viewer_for({"userArn": "arn:aws:iam::123456789012:user/alice"}, "iam", ())
    >>> viewer.may_see("arn:aws:iam::123456789012:user/alice"), viewer.may_see(None)
    (True, False)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ISOLATION_MODES = ("iam", "off")

_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):(?P<service>iam|sts)::(?P<account>[0-9]{12}):"
    r"(?P<resource>\S+)$"
)


class NoIdentity(PermissionError):
    """Isolation is on and the request carries no IAM identity: it may see nothing."""


@dataclass(frozen=True)
class Principal:
    """An IAM principal, parsed from its ARN.

    Attributes:
        partition, account: as in the ARN.
        kind: `user`, `role`, `assumed-role`, `federated-user` or `root`.
        name: the user, role or federated user name (case-folded for users and roles);
            empty for root.
        session: the role session name of an assumed role, else None.
    """

    partition: str
    account: str
    kind: str
    name: str
    session: str | None = None

    @property
    def key(self) -> str:
        """The canonical ARN: what `owner_key` returns for this principal."""
        service = "sts" if self.kind in ("assumed-role", "federated-user") else "iam"
        prefix = f"arn:{self.partition}:{service}::{self.account}:"
        if self.kind == "root":
            return prefix + "root"
        if self.session is not None:
            return f"{prefix}{self.kind}/{self.name}/{self.session}"
        return f"{prefix}{self.kind}/{self.name}"


def parse_principal(arn: str) -> Principal | None:
    """The principal an IAM or STS ARN names, or None if it names no principal."""
    match = _ARN.match(arn.strip())
    if match is None:
        return None
    partition, service, account = match["partition"], match["service"], match["account"]
    kind, _, rest = match["resource"].partition("/")
    parts = rest.split("/")
    if service == "iam" and kind == "root" and not rest:
        return Principal(partition, account, "root", "")
    if not rest or any(not part for part in parts):
        return None
    if service == "iam" and kind in ("user", "role"):
        # The last segment is the name; the ones before it are the path.
        return Principal(partition, account, kind, parts[-1].lower())
    if service == "sts" and kind == "assumed-role" and len(parts) == 2:
        return Principal(partition, account, kind, parts[0].lower(), parts[1])
    if service == "sts" and kind == "federated-user" and len(parts) == 1:
        return Principal(partition, account, kind, parts[0])
    return None


def owner_key(value: str | None) -> str | None:
    """The canonical form of an identity (a `spawn:iam-user` tag value, or a caller's
    ARN), or None when there is none. Values that are not principal ARNs are kept as
    they are (trimmed), so they can only ever equal themselves."""
    if value is None or not value.strip():
        return None
    principal = parse_principal(value)
    return principal.key if principal is not None else value.strip()


def reader_matches(reader: str, caller: str) -> bool:
    """Whether the configured reader entry `reader` covers the caller's ARN."""
    wanted, actual = parse_principal(reader), parse_principal(caller)
    if wanted is None or actual is None:
        return False
    if wanted.key == actual.key:
        return True
    return (
        wanted.kind == "role"
        and actual.kind == "assumed-role"
        and (wanted.partition, wanted.account, wanted.name)
        == (actual.partition, actual.account, actual.name)
    )


def check_readers(readers: Iterable[str]) -> None:
    """Raise ValueError naming the first entry that is not a principal ARN."""
    for reader in readers:
        if parse_principal(reader) is None:
            raise ValueError(
                f"{reader!r} is not an IAM user, role, assumed-role session, federated user "
                "or root ARN"
            )


@dataclass(frozen=True)
class Viewer:
    """What one request may see.

    Attributes:
        everything: a fleet-wide reader, or isolation is off.
        owner: the caller's canonical identity (empty when `everything`).
    """

    everything: bool
    owner: str = ""

    def may_see(self, owner: str | None) -> bool:
        """Whether something owned by `owner` (None: no owner known) is visible."""
        return self.everything or (owner is not None and owner == self.owner)

    @property
    def scope(self) -> str:
        """Binds a cursor to what this viewer may list: a cursor made for one caller is
        refused for another. A digest keeps the caller's ARN out of the cursor's length."""
        if self.everything:
            return "all"
        return "owner:" + hashlib.sha256(self.owner.encode()).hexdigest()[:32]


EVERYTHING = Viewer(everything=True)


def viewer_for(
    identity: Mapping[str, Any] | None, isolation: str, readers: Iterable[str]
) -> Viewer:
    """The viewer for a request whose context holds `identity` (API Gateway's
    `requestContext.identity`).

    Raises:
        NoIdentity: isolation is `iam` and there is no caller ARN; such a request sees
            nothing, whatever the route (never fail open).
    """
    if isolation == "off":
        return EVERYTHING
    caller = identity.get("userArn") if isinstance(identity, Mapping) else None
    if not isinstance(caller, str) or not caller.strip():
        raise NoIdentity("the request carries no IAM identity")
    key = owner_key(caller) or caller
    if any(reader_matches(reader, caller) for reader in readers):
        return EVERYTHING
    return Viewer(everything=False, owner=key)

"""Per-user isolation of the HTTP API: who is asking, and what they may see.

spawn tags each instance with its launcher's ARN (`spawn:iam-user`); API Gateway gives
the caller's. Both are normalised by `owner_key` (IAM path dropped, names case-folded,
an assumed-role session kept exactly) and a caller sees what carries its own key,
unless it is a fleet reader (`FLEET_READERS`; a role covers its sessions) or
`API_ISOLATION=off`. Details: docs/api.md ("The identity rule").

Example:
    >>> owner_key("arn:aws:iam::123456789012:user/team/Alice")
    'arn:aws:iam::123456789012:user/alice'
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

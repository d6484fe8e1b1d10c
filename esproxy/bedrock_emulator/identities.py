"""IdentityBook: who may call the emulator, which roles they may assume, and the credentials issued.

Base identities are the `--key` pairs. Roles (`--role ARN[#EXTERNAL_ID]`) may be assumed by any
verified caller, with the external id they name; `AssumeRoleWithWebIdentity` takes the one
`--web-identity-token`. Every grant is a temporary `ASIA...` key with a session token that expires
after `credential_lifetime_s`.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

ACCOUNT_ID = "123456789012"
KEY_ALPHABET = string.ascii_uppercase + string.digits
# Issued credentials are forgotten this long after they expire (they then read as unknown keys).
FORGET_AFTER_S = 3600.0


@dataclass(frozen=True)
class TemporaryCredentials:
    access_key: str
    secret_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expires_at: float  # epoch seconds
    role_arn: str
    session_name: str

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at

    @property
    def assumed_role_arn(self) -> str:
        account, role_name = split_role(self.role_arn)
        return f"arn:aws:sts::{account}:assumed-role/{role_name}/{self.session_name}"

    @property
    def role_id(self) -> str:
        return "AROA" + stable_suffix(self.role_arn)


class IdentityBook:
    def __init__(
        self,
        keys: Mapping[str, str],
        roles: Mapping[str, str | None],
        web_identity_token: str | None,
        lifetime_s: float,
    ) -> None:
        self.keys = keys
        self.roles = roles
        self.web_identity_token = web_identity_token
        self.lifetime_s = lifetime_s
        self._issued: dict[str, TemporaryCredentials] = {}

    def temporary(self, access_key: str) -> TemporaryCredentials | None:
        return self._issued.get(access_key)

    def issue(
        self, role_arn: str, session_name: str, duration_s: float | None
    ) -> TemporaryCredentials:
        self._forget_old()
        lifetime = self.lifetime_s if duration_s is None else min(duration_s, self.lifetime_s)
        credentials = TemporaryCredentials(
            access_key="ASIA" + "".join(secrets.choice(KEY_ALPHABET) for _ in range(16)),
            secret_key=secrets.token_urlsafe(30),
            session_token="IQoJb3JpZ2luX2VtdWxhdG9y" + secrets.token_urlsafe(96),
            expires_at=time.time() + lifetime,
            role_arn=role_arn,
            session_name=session_name,
        )
        self._issued[credentials.access_key] = credentials
        return credentials

    def issued(self) -> list[TemporaryCredentials]:
        return list(self._issued.values())

    def _forget_old(self) -> None:
        cutoff = time.time() - FORGET_AFTER_S
        for key in [k for k, c in self._issued.items() if c.expires_at < cutoff]:
            del self._issued[key]


def split_role(role_arn: str) -> tuple[str, str]:
    """(account, role name) of `arn:aws:iam::ACCOUNT:role/path/NAME`; odd ARNs get defaults."""
    parts = role_arn.split(":", 5)
    account = parts[4] if len(parts) == 6 and parts[4] else ACCOUNT_ID
    resource = parts[5] if len(parts) == 6 else role_arn
    return account, resource.rsplit("/", 1)[-1]


def stable_suffix(text: str) -> str:
    """17 characters derived from `text`, so one role always shows the same unique id."""
    digest = hashlib.sha256(text.encode()).digest()
    return "".join(KEY_ALPHABET[byte % len(KEY_ALPHABET)] for byte in digest[:17])


def parse_role(value: str) -> tuple[str, str | None]:
    """`ROLE_ARN[#EXTERNAL_ID]` as the `--role` flag takes it."""
    arn, sep, external_id = value.partition("#")
    if not arn.startswith("arn:") or ":role/" not in arn or (sep and not external_id):
        raise ValueError("expected ROLE_ARN[#EXTERNAL_ID], e.g. arn:aws:iam::123456789012:role/r")
    return arn, external_id or None

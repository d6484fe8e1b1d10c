"""EmulatorSettings: the knobs of the bundled Bedrock Runtime emulator (CLI flags map onto them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class EmulatorSettings:
    """How the emulator behaves; every field has a default that suits local development.

    - `latency_ms`: added to every model call before it answers (before the first streamed event).
    - `quota_per_minute`: model calls allowed per access key in any 60-second window; `None` or 0
      means unlimited. Over quota the call fails with ThrottlingException (429).
    - `keys`: access key -> secret key for SigV4 verification; empty accepts any credentials.
    - `stream_delay_ms`: pause between consecutive ConverseStream events.
    - `stream_burst`: how many events open a ConverseStream answer back to back, before the
      pauses start (1: a pause before every event after the first; 2: the message start and the
      first delta together, then a pause before each later event).
    - `clock_skew_s`: how far `X-Amz-Date` may drift from now when keys are configured (AWS: 5 min).
    - `max_recorded_requests`: the request log keeps only the newest this many calls.
    - `roles`: role ARN -> the external id it requires (or None), for STS `AssumeRole` by any
      verified caller and `AssumeRoleWithWebIdentity`; empty means no role can be assumed.
    - `web_identity_token`: the one token `AssumeRoleWithWebIdentity` accepts (None: none).
    - `credential_lifetime_s`: how long issued temporary credentials live.
    """

    latency_ms: float = 0.0
    quota_per_minute: int | None = None
    keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    stream_delay_ms: float = 0.0
    stream_burst: int = 1
    clock_skew_s: float = 300.0
    max_recorded_requests: int = 1000
    roles: Mapping[str, str | None] = field(default_factory=dict)
    web_identity_token: str | None = field(default=None, repr=False)
    credential_lifetime_s: float = 3600.0

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
    - `clock_skew_s`: how far `X-Amz-Date` may drift from now when keys are configured (AWS: 5 min).
    - `max_recorded_requests`: the request log keeps only the newest this many calls.
    """

    latency_ms: float = 0.0
    quota_per_minute: int | None = None
    keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    stream_delay_ms: float = 0.0
    clock_skew_s: float = 300.0
    max_recorded_requests: int = 1000

"""EmulatorState: the app-scoped parts of one emulator (settings, faults, quotas, request log)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from aiohttp import web

from esproxy.bedrock_emulator.faults import FaultBook
from esproxy.bedrock_emulator.identities import IdentityBook
from esproxy.bedrock_emulator.quotas import QuotaBook
from esproxy.bedrock_emulator.request_log import RequestLog
from esproxy.bedrock_emulator.settings import EmulatorSettings
from esproxy.bedrock_emulator.usage import UsageBook


@dataclass
class StreamCounts:
    """ConverseStream answers: open now, finished, and ended early because the client left."""

    open: int = 0
    finished: int = 0
    abandoned: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class EmulatorState:
    settings: EmulatorSettings
    faults: FaultBook
    quotas: QuotaBook
    requests: RequestLog
    usage: UsageBook
    identities: IdentityBook
    sts_requests: RequestLog
    streams: StreamCounts = field(default_factory=StreamCounts)

    @classmethod
    def from_settings(cls, settings: EmulatorSettings) -> EmulatorState:
        return cls(
            settings=settings,
            faults=FaultBook(),
            quotas=QuotaBook(settings.quota_per_minute),
            requests=RequestLog(settings.max_recorded_requests),
            usage=UsageBook(),
            identities=IdentityBook(
                settings.keys,
                settings.roles,
                settings.web_identity_token,
                settings.credential_lifetime_s,
            ),
            sts_requests=RequestLog(settings.max_recorded_requests),
        )


EMULATOR_STATE = web.AppKey("bedrock_emulator_state", EmulatorState)

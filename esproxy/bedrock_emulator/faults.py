"""Scripted failures: the faults queued through `POST /_emulator/faults` and their matching rules.

A fault answers the next `count` matching model calls like Bedrock fails, hangs, or breaks a stream.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Final

from esproxy.bedrock_emulator.errors import (
    BedrockError,
    code_for,
    default_message,
    status_for,
)

HANG: Final = "Hang"
OPERATIONS: Final = ("InvokeModel", "Converse", "ConverseStream")
STREAMING_OPERATIONS: Final = frozenset({"ConverseStream"})
FIELDS: Final = frozenset(
    {"status", "code", "message", "count", "model", "operation", "hang_ms", "after_events"}
)


class FaultSpecError(ValueError):
    """A fault request the control API cannot accept."""


@dataclass(frozen=True)
class Fault:
    """One scripted failure.

    `code` names the Bedrock error to answer with. `Hang` holds the call until the client gives up
    (or for `hang_ms`, then answers ModelTimeoutException); no code with `hang_ms` is a slow but
    normal answer. `after_events` makes a stream fail after that many events.
    """

    code: str | None
    status: int
    message: str
    count: int = 1
    model: str | None = None
    operation: str | None = None
    hang_ms: float | None = None
    after_events: int | None = None

    @property
    def hangs(self) -> bool:
        return self.code == HANG

    def matches(self, operation: str, model_ids: Collection[str]) -> bool:
        """`model_ids`: the id as sent and the bare foundation-model id; either may match."""
        if self.model is not None and self.model not in model_ids:
            return False
        if self.operation is not None and self.operation != operation:
            return False
        return self.after_events is None or operation in STREAMING_OPERATIONS

    def error(self) -> BedrockError | None:
        if self.code is None or self.hangs:
            return None
        return BedrockError(self.code, self.message, status=self.status)

    def to_json(self) -> dict[str, object]:
        return {key: value for key, value in asdict(self).items() if value is not None}


def parse_fault(spec: object) -> Fault:
    if not isinstance(spec, Mapping):
        raise FaultSpecError("a fault is a JSON object")
    unknown = sorted(set(spec) - FIELDS)
    if unknown:
        raise FaultSpecError(f"unknown fault fields: {', '.join(unknown)}")
    status = optional_int(spec, "status")
    code = optional_str(spec, "code")
    hang_ms = optional_number(spec, "hang_ms")
    if code is None and status is not None:
        code = code_for(status)
    if code is None and hang_ms is None:
        raise FaultSpecError("a fault needs a code, a status or hang_ms")
    count = optional_int(spec, "count")
    fault = Fault(
        code=code,
        status=status if status is not None else status_for(code or ""),
        message=optional_str(spec, "message") or default_message(code or ""),
        count=1 if count is None else count,
        model=optional_str(spec, "model"),
        operation=optional_str(spec, "operation"),
        hang_ms=hang_ms,
        after_events=optional_int(spec, "after_events"),
    )
    return checked(fault)


def optional_int(spec: Mapping[str, object], key: str) -> int | None:
    value = spec.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise FaultSpecError(f"fault field {key!r} must be an integer")


def optional_number(spec: Mapping[str, object], key: str) -> float | None:
    value = spec.get(key)
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    raise FaultSpecError(f"fault field {key!r} must be a number")


def optional_str(spec: Mapping[str, object], key: str) -> str | None:
    value = spec.get(key)
    if value is None or isinstance(value, str):
        return value
    raise FaultSpecError(f"fault field {key!r} must be a string")


def checked(fault: Fault) -> Fault:
    if fault.count < 1:
        raise FaultSpecError("count must be at least 1")
    if not 100 <= fault.status <= 599:
        raise FaultSpecError("status must be an HTTP status code")
    if fault.operation is not None and fault.operation not in OPERATIONS:
        raise FaultSpecError(f"operation must be one of {', '.join(OPERATIONS)}")
    if fault.after_events is not None and (fault.after_events < 0 or fault.code is None):
        raise FaultSpecError("after_events needs an error code or Hang and must not be negative")
    if fault.hang_ms is not None and fault.hang_ms < 0:
        raise FaultSpecError("hang_ms must not be negative")
    return fault


class FaultBook:
    """The queued faults, matched first in, first out; each match uses up one of its `count`."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def pending(self) -> list[Fault]:
        return list(self._faults)

    def take(self, operation: str, model_ids: Collection[str]) -> Fault | None:
        for index, fault in enumerate(self._faults):
            if fault.matches(operation, model_ids):
                if fault.count > 1:
                    self._faults[index] = replace(fault, count=fault.count - 1)
                else:
                    del self._faults[index]
                return fault
        return None

"""IntegrationRegistry: finds the integration for an endpoint's `service` value."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from esproxy.errors import BadRequest
from esproxy.integrations.base import Integration


class IntegrationRegistry:
    def __init__(self, integrations: Iterable[Integration]) -> None:
        self._by_name = {integration.name: integration for integration in integrations}

    def __iter__(self) -> Iterator[Integration]:
        return iter(self._by_name.values())

    def __contains__(self, service: object) -> bool:
        return service in self._by_name

    def get(self, service: str) -> Integration:
        try:
            return self._by_name[service]
        except KeyError:
            raise BadRequest(f"Unknown service [{service}]") from None

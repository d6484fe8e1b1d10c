"""Dividing one endpoint's rate among the processes that use it, by their recent demand."""

from __future__ import annotations

from collections.abc import Mapping

# A process that uses an endpoint but asks for (almost) nothing keeps this much of the rate, so
# its next call is not stranded until the next lease round; the others share the rest.
IDLE_FRACTION = 0.01


def divide(rate: float, demands: Mapping[str, float]) -> dict[str, float]:
    """Each process's share of `rate` (per minute), given its demand (calls per minute wanted).

    Max-min fair: demands below the fair share are met in full, the rest split what is left
    equally. Rate nobody wants becomes headroom in proportion to demand, so that it goes where
    calls come from (demand is measured over a window, and lags a rising load). The shares sum to
    `rate` and never more.
    """
    if not demands:
        return {}
    floor = min(rate * IDLE_FRACTION, rate / (2 * len(demands)))
    shares = {name: floor for name, demand in demands.items() if demand < floor}
    remaining = rate - floor * len(shares)
    wanting = sorted((demand, name) for name, demand in demands.items() if name not in shares)
    for position, (demand, name) in enumerate(wanting):
        fair = remaining / (len(wanting) - position)
        shares[name] = min(demand, fair)
        remaining -= shares[name]
    if remaining > 1e-9:
        # Over every process's demand, those on the floor too: portions must sum to 1.
        wanted = sum(demands.values())
        for name in shares:
            portion = demands[name] / wanted if wanted > 0 else 1 / len(shares)
            shares[name] += remaining * portion
    return shares

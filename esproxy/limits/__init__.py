"""Limits for the whole deployment: each endpoint's rate shared by every esproxy process through
leases in the upstream cluster, adaptive pacing (AIMD) after Bedrock throttles, and token budgets.

The pacing primitive stays `esproxy.inference.rate_limits` (aiolimiter, retuned in place); this
room decides the pace. `app.py` builds it with `build_limits`.
"""

from __future__ import annotations

from esproxy.limits.coordinator import LimitsCoordinator
from esproxy.limits.leases import LeaseIndex, concrete_index

__all__ = ["LeaseIndex", "LimitsCoordinator", "concrete_index"]

"""Bedrock on-demand prices per model, for `esproxy_bedrock_estimated_cost_usd_total`.

An estimate only: list prices change, batch and provisioned throughput are priced differently, and
AWS bills from its own counts. The built-in table is dated; `[metrics.prices]` overrides or extends
it per model id (see conf/example.toml).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# us-east-1 on-demand list prices (aws.amazon.com/bedrock/pricing) for the models in the user's
# document, as of this date.
PRICES_AS_OF = "2025-01-15"


@dataclass(frozen=True)
class ModelPrice:
    """US dollars per 1,000 tokens."""

    input_per_1k_tokens: float = 0.0
    output_per_1k_tokens: float = 0.0


DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "amazon.titan-embed-text-v2:0": ModelPrice(input_per_1k_tokens=0.00002),
    "amazon.titan-text-premier-v1:0": ModelPrice(
        input_per_1k_tokens=0.0005, output_per_1k_tokens=0.0015
    ),
}

# Cross-region inference profiles (`us.`, `eu.`, `apac.`...) bill as their foundation model.
_PROFILE_PREFIX = re.compile(r"\A[a-z]{2,4}\.(?=[a-z0-9-]+\.)")


class PriceTable:
    def __init__(self, overrides: Mapping[str, ModelPrice] | None = None) -> None:
        self._prices = {**DEFAULT_PRICES, **(overrides or {})}

    def price_of(self, model: str) -> ModelPrice | None:
        """The price of a model id, an inference profile id, or a foundation-model ARN."""
        model_id = model.rsplit("/", 1)[-1] if model.startswith("arn:") else model
        price = self._prices.get(model_id)
        if price is None:
            price = self._prices.get(_PROFILE_PREFIX.sub("", model_id, count=1))
        return price

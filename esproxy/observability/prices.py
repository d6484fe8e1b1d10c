"""Bedrock on-demand prices per model, for `esproxy_bedrock_estimated_cost_usd_total`.

An estimate only: list prices change, batch and provisioned throughput are priced differently, and
AWS bills from its own counts. The built-in table is dated; `[metrics.prices]` overrides or extends
it per model id (see conf/example.toml).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# us-east-1 on-demand list prices (aws.amazon.com/bedrock/pricing), US dollars per 1,000 tokens, as
# of this date: the two models of the user's document first, then common models of the providers
# it names. Check them against your bill; add or override any under [metrics.prices].
PRICES_AS_OF = "2025-01-15"


@dataclass(frozen=True)
class ModelPrice:
    """US dollars per 1,000 tokens."""

    input_per_1k_tokens: float = 0.0
    output_per_1k_tokens: float = 0.0


DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "amazon.titan-embed-text-v2:0": ModelPrice(0.00002),
    "amazon.titan-text-premier-v1:0": ModelPrice(0.0005, 0.0015),
    "amazon.titan-embed-text-v1": ModelPrice(0.0001),
    "amazon.titan-text-express-v1": ModelPrice(0.0002, 0.0006),
    "amazon.titan-text-lite-v1": ModelPrice(0.00015, 0.0002),
    "cohere.embed-english-v3": ModelPrice(0.0001),
    "cohere.embed-multilingual-v3": ModelPrice(0.0001),
    "cohere.command-r-v1:0": ModelPrice(0.0005, 0.0015),
    "cohere.command-r-plus-v1:0": ModelPrice(0.003, 0.015),
    "anthropic.claude-3-haiku-20240307-v1:0": ModelPrice(0.00025, 0.00125),
    "anthropic.claude-3-5-haiku-20241022-v1:0": ModelPrice(0.0008, 0.004),
    "anthropic.claude-3-sonnet-20240229-v1:0": ModelPrice(0.003, 0.015),
    "anthropic.claude-3-5-sonnet-20240620-v1:0": ModelPrice(0.003, 0.015),
    "anthropic.claude-3-5-sonnet-20241022-v2:0": ModelPrice(0.003, 0.015),
    "meta.llama3-8b-instruct-v1:0": ModelPrice(0.0003, 0.0006),
    "meta.llama3-70b-instruct-v1:0": ModelPrice(0.00265, 0.0035),
    "mistral.mistral-7b-instruct-v0:2": ModelPrice(0.00015, 0.0002),
    "mistral.mixtral-8x7b-instruct-v0:1": ModelPrice(0.00045, 0.0007),
    "ai21.jamba-1-5-mini-v1:0": ModelPrice(0.0002, 0.0004),
    "ai21.jamba-1-5-large-v1:0": ModelPrice(0.002, 0.008),
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

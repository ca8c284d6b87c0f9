"""A cost model for routing reports: prices and typical token counts per tier.

The outcome data records scores, not tokens (o1's and R1's reasoning tokens
are hidden), so cost is modelled: prompt tokens from the prompt's length,
output tokens from typical figures. Defaults are list prices per million
tokens of gpt-4o-mini and o4-mini; reports say which figures they used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["DEFAULT_PRICES", "TierPrice", "estimate_prompt_tokens", "routed_cost_usd"]

# English text runs about 1.3 tokens a word in OpenAI's tokenizers.
TOKENS_PER_WORD = 1.3


@dataclass(frozen=True, slots=True)
class TierPrice:
    """USD per million tokens, and the output a typical answer produces."""

    input_usd_per_mtok: float
    output_usd_per_mtok: float
    typical_output_tokens: int  # reasoning tokens included

    def cost_usd(self, prompt_tokens: float) -> float:
        return (
            prompt_tokens * self.input_usd_per_mtok
            + self.typical_output_tokens * self.output_usd_per_mtok
        ) / 1e6

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


DEFAULT_PRICES: dict[str, TierPrice] = {
    "fast": TierPrice(0.15, 0.60, typical_output_tokens=400),
    "reasoning": TierPrice(1.10, 4.40, typical_output_tokens=400 + 1600),
}


def estimate_prompt_tokens(text: str) -> float:
    return len(text.split()) * TOKENS_PER_WORD + 8


def routed_cost_usd(
    prompt_tokens: list[float],
    to_reasoning: list[bool],
    prices: dict[str, TierPrice] = DEFAULT_PRICES,
) -> float:
    """Total modelled cost of answering these prompts with this routing."""
    return sum(
        prices["reasoning" if hard else "fast"].cost_usd(tokens)
        for tokens, hard in zip(prompt_tokens, to_reasoning, strict=True)
    )

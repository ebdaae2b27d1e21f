"""When a delivery is tried again after a temporary failure (DESIGN §2): the channel's retry
policy and its backoff. A leaf: imports nothing of the package, so the Store and the state
machine use it without loading the channel file's machinery (yaml, the workers)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RetryPolicy(BaseModel):
    """When to try a delivery again after a temporary failure (DESIGN §2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delay: float = Field(10.0, gt=0, description="seconds before the first retry")
    backoff: float = Field(1.0, ge=1, description="multiplier per attempt; 1 = fixed delay")
    max_delay: float = Field(600.0, gt=0, description="cap of the computed delay, seconds")
    max_attempts: int = Field(5, ge=1, description="attempts in all, the first one included")
    jitter: float = Field(0.1, ge=0, le=1, description="random spread, a fraction of the delay")

    def delay_after(self, attempt: int, spread: float) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based). `spread` is a
        random number in [-1, 1] supplied by the caller (tests pass fixed values)."""
        # Cap the exponent before raising: a large attempt number must not overflow a float.
        exponent = min(attempt - 1, 1024)
        try:
            base = min(self.delay * self.backoff**exponent, self.max_delay)
        except OverflowError:
            base = self.max_delay
        return max(0.0, base * (1 + self.jitter * spread))

"""Loss-spike / NaN detection and the learning-rate schedule (a pure function of step and LR scale)."""

from __future__ import annotations

import math
from collections import deque


class SpikeDetector:
    """Flags a step whose loss is NaN/inf, or far above the recent good losses.

    A spike is ``loss > mean + sigma·std`` **and** ``loss > ratio·mean`` over the last ``window`` good
    losses (both, so a flat curve with tiny std does not fire on noise). Only good losses enter history.
    """

    def __init__(self, window: int, min_history: int, sigma: float, ratio: float):
        self.window, self.min_history, self.sigma, self.ratio = window, min_history, sigma, ratio
        self.history: deque[float] = deque(maxlen=window)

    def check(self, loss: float) -> str | None:
        """None if the loss is fine (and records it), else the reason."""
        if not math.isfinite(loss):
            return "nan" if math.isnan(loss) else "inf"
        if len(self.history) >= self.min_history:
            mean = sum(self.history) / len(self.history)
            std = math.sqrt(sum((x - mean) ** 2 for x in self.history) / len(self.history))
            if loss > mean + self.sigma * std and loss > self.ratio * mean:
                return f"spike {loss:.4g} > mean {mean:.4g} (+{self.sigma}σ={self.sigma * std:.3g}, ×{self.ratio})"
        self.history.append(loss)
        return None

    def state_dict(self) -> dict:
        return {"history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        self.history = deque(state["history"], maxlen=self.window)


def lr_at(step: int, lr: float, final_lr: float, warmup: int, max_steps: int, scale: float = 1.0) -> float:
    """Linear warm-up from 0 to ``lr`` over ``warmup`` steps, then linear decay to ``final_lr`` at
    ``max_steps``; everything times ``scale`` (cut at each rollback). ``step`` counts from 0."""
    if warmup > 0 and step < warmup:
        base = lr * (step + 1) / warmup
    else:
        span = max(1, max_steps - warmup)
        frac = min(1.0, (step - warmup) / span)
        base = lr + (final_lr - lr) * frac
    return base * scale

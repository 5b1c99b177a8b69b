"""What a budget buys: loss against dollars, and the loss a doubling of spend gains (the budget holder's question).

Compute converts to money at a price per GPU-hour, one GPU's dense peak FLOP/s and a model FLOPs utilisation:

    GPU-hours = C / (peak * MFU * 3600),   dollars = GPU-hours * price.

The FLOPs are the sweep's own (its ``flops_convention``), the convention MFU is measured in (``sweep doctor``,
the ledger's ``mfu``), so the two cancel consistently. Loss at C is Approach 3's compute-optimal loss (the only
approach that predicts loss), with its bootstrap interval; the gain of a doubling is L(C) - L(2C), bootstrapped
per resample (``gain@C`` in the summary), so its interval is that of the difference, not of two losses.

Pure: a fit summary and prices in, rows out.
"""

from __future__ import annotations

from dataclasses import dataclass

SPEND_MULTIPLES = (0.25, 0.5, 1.0, 2.0, 4.0)
"""The spends ``sweep predict`` shows around the one asked for."""


@dataclass(frozen=True)
class Pricing:
    price_per_gpu_hour: float
    """Dollars (or any currency) per GPU-hour."""
    peak_flops: float
    """One GPU's dense peak FLOP/s at the training precision."""
    mfu: float
    """Model FLOPs utilisation to assume, in (0, 1]."""

    def __post_init__(self):
        for name in ("price_per_gpu_hour", "peak_flops", "mfu"):
            value = getattr(self, name)
            if not (value > 0 and value < float("inf")):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if self.mfu > 1:
            raise ValueError(f"mfu must be at most 1, got {self.mfu!r}")

    def gpu_hours(self, flops: float) -> float:
        return flops / (self.peak_flops * self.mfu * 3600.0)

    def dollars(self, flops: float) -> float:
        return self.gpu_hours(flops) * self.price_per_gpu_hour

    def flops_for(self, dollars: float) -> float:
        return dollars / self.price_per_gpu_hour * self.peak_flops * self.mfu * 3600.0


def roi_rows(summary: dict, pricing: Pricing) -> list[dict]:
    """One row per predicted budget that Approach 3 fitted: flops, gpu_hours, dollars, loss and its interval, gain
    (loss gained by doubling the spend) and its interval; empty when Approach 3 is not fitted."""
    ci = (summary.get("approach3") or {}).get("ci", {})
    rows = []
    for entry in summary["predictions"]:
        if "approach3" not in entry:
            continue
        c, p = entry["flops"], entry["approach3"]
        rows.append({"flops": c, "gpu_hours": pricing.gpu_hours(c), "dollars": pricing.dollars(c),
                     "loss": p["loss"], "loss_ci": ci.get(f"loss@{c:.3g}"),
                     "gain": p.get("gain"), "gain_ci": ci.get(f"gain@{c:.3g}")})  # fmt: skip
    return rows

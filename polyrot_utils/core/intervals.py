"""Intervals across seeds for a headline number: a percentile bootstrap over *seeds*.

A chapter's headline is usually a mean over the seeds of a cohort (accuracy, KL) or over the
pairs of seeds (a gap, a p-value, an EV). With 3-9 seeds the honest unit of replication is
the seed, so both functions resample seeds with replacement:

- :func:`seed_interval` — values keyed by seed; each bootstrap draw averages the drawn seeds'
  values.
- :func:`pair_interval` — values keyed by an unordered pair of seeds; each bootstrap draw keeps
  the pairs of two *different* drawn seeds (with the multiplicity of the draw) and averages
  them; a draw with fewer than two distinct seeds is redrawn.

Both return an :class:`Interval` ``(point, lo, hi, n, level, method)``: ``point`` is the plain
mean of the values, ``lo``/``hi`` the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of
the bootstrap means. With so few seeds the interval is coarse (it cannot extend beyond the
range of the values) — it says how much the headline moves with the choice of seeds, not a
population interval.

>>> iv = seed_interval({0: 0.1, 1: 0.2, 2: 0.3}, n_boot=2000, seed=0)
>>> round(iv.point, 3), iv.lo >= 0.1, iv.hi <= 0.3, iv.n
(0.2, True, True, 3)
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np

__all__ = ["Interval", "pair_interval", "seed_interval"]


# a pair's seed label (any hashable: an int seed, a member name); both of a pair's are one type
SeedT = TypeVar("SeedT", bound=Hashable)


@dataclass(frozen=True)
class Interval:
    """A headline mean and its bootstrap interval over seeds (see the module docstring)."""

    point: float
    lo: float
    hi: float
    n: int
    level: float
    method: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.point:.3g} [{self.lo:.3g}, {self.hi:.3g}]"


def _check(values: Mapping[Any, float], level: float, n_boot: int, what: str) -> dict[Any, float]:
    if not isinstance(values, Mapping) or not values:
        raise ValueError(f"values must be a non-empty mapping of {what} -> number, got {values!r}")
    if not 0 < float(level) < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if int(n_boot) < 100:
        raise ValueError(f"n_boot must be >= 100, got {n_boot}")
    out = {}
    for k, v in values.items():
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"value for {k!r} must be a number, got {v!r}") from None
        if not math.isfinite(x):
            raise ValueError(f"value for {k!r} is not finite ({v!r})")
        out[k] = x
    return out


def _percentiles(means: np.ndarray, level: float) -> tuple[float, float]:
    return (float(np.quantile(means, (1 - level) / 2)), float(np.quantile(means, (1 + level) / 2)))


def seed_interval(
    values: Mapping[Hashable, float], *, level: float = 0.9, n_boot: int = 4000, seed: int = 0
) -> Interval:
    """Mean of per-seed ``values`` and its percentile-bootstrap interval over seeds."""
    vals = _check(values, level, n_boot, "seed")
    x = np.array(list(vals.values()))
    rng = np.random.default_rng(int(seed))
    draws = rng.integers(0, len(x), size=(int(n_boot), len(x)))
    lo, hi = _percentiles(x[draws].mean(1), level) if len(x) > 1 else (x[0], x[0])
    return Interval(float(x.mean()), lo, hi, len(x), float(level), "bootstrap over seeds")


def pair_interval(
    values: Mapping[tuple[SeedT, SeedT], float],
    *,
    level: float = 0.9,
    n_boot: int = 4000,
    seed: int = 0,
) -> Interval:
    """Mean of per-pair ``values`` (keys ``(seed_a, seed_b)``, unordered) and its percentile
    bootstrap interval over the seeds the pairs are made of."""
    vals = _check(values, level, n_boot, "(seed_a, seed_b)")
    for k in vals:
        if not (isinstance(k, tuple) and len(k) == 2 and k[0] != k[1]):
            raise ValueError(
                f"pair keys must be (seed_a, seed_b) with two different seeds, got {k!r}"
            )
    seeds = sorted({s for k in vals for s in k}, key=str)
    index = {s: i for i, s in enumerate(seeds)}
    n = len(seeds)
    table = np.full((n, n), np.nan)
    for (a, b), v in vals.items():
        table[index[a], index[b]] = table[index[b], index[a]] = v
    rng = np.random.default_rng(int(seed))
    means: list[float] = []
    while len(means) < int(n_boot):
        draw = rng.integers(0, n, size=n)
        counts = np.bincount(draw, minlength=n).astype(float)
        weight = np.outer(counts, counts)
        np.fill_diagonal(weight, 0.0)
        weight[np.isnan(table)] = 0.0
        if weight.sum() == 0:
            continue
        means.append(float(np.nansum(np.where(weight > 0, table, 0.0) * weight) / weight.sum()))
    lo, hi = _percentiles(np.array(means), level)
    return Interval(
        float(np.mean(list(vals.values()))), lo, hi, n, float(level), "bootstrap over seeds (pairs)"
    )

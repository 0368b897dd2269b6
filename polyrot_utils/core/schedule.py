"""When to save a checkpoint: the one schedule shared by the toy trainer and the GPT-NeoX stand-ins;
and the warm-up + cosine learning-rate schedule of the two Dyck trainers.

Steps count optimiser updates done, so step 0 is the initialisation and ``n_steps`` the end.
"""

from __future__ import annotations

import math

__all__ = ["checkpoint_steps", "warmup_cosine_lr"]


def warmup_cosine_lr(
    step: int, *, lr: float, warmup_steps: int, total_steps: int, min_lr_ratio: float
) -> float:
    """Learning rate of the update that follows ``step`` completed updates: linear warm-up
    ``lr * (step + 1) / warmup_steps`` for ``step < warmup_steps``, then cosine decay from ``lr``
    to ``min_lr_ratio * lr`` at ``step = total_steps`` (held there after)."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    lo = lr * min_lr_ratio
    return lo + (lr - lo) * 0.5 * (1 + math.cos(math.pi * progress))


def checkpoint_steps(n_steps: int, n_even: int = 8, *, powers_of_two: bool = True) -> list[int]:
    """Sorted, distinct steps in ``[0, n_steps]`` at which weights are saved.

    Always 0 and ``n_steps``; the ``n_even`` evenly spaced steps ``round(i · n_steps / n_even)``,
    ``i = 1 … n_even`` (the last is ``n_steps``); and, when ``powers_of_two`` (Pythia's schedule:
    dense early, where training changes most), every power of two below ``n_steps``.

    >>> checkpoint_steps(16, n_even=4)                       # the GPT-NeoX stand-ins
    [0, 1, 2, 4, 8, 12, 16]
    >>> checkpoint_steps(100, n_even=5, powers_of_two=False)  # the toy: 4 inner checkpoints
    [0, 20, 40, 60, 80, 100]
    """
    if n_steps < 0 or n_even < 1:
        raise ValueError(f"need n_steps >= 0 and n_even >= 1, got {n_steps} and {n_even}")
    steps = {0, n_steps}
    steps.update(round(i * n_steps / n_even) for i in range(1, n_even + 1))
    k = 1
    while powers_of_two and k < n_steps:
        steps.add(k)
        k *= 2
    return sorted(steps)

"""The paper's stopping rule and the per-seed convergence record.

Rule (the paper's ``train.py``): evaluate every ``eval_every`` optimiser steps on the three
evaluation sets (:data:`polyrot_utils.tasks.dyck.paper_task.EVAL_SPLITS`); the run has *converged*
at the
first evaluation whose minimum accuracy over sets × readouts reaches ``threshold`` (0.9999);
training then continues ``extra_steps`` more steps (the paper's text: 10,000; its code: 3,000)
and stops, or stops at ``max_steps`` (the cap; also the length of the cosine schedule).

Record (one per seed)::

    {cohort, seed, task, converged, steps, tokens, seconds,
     total_steps, total_tokens, total_seconds, min_accuracy,
     accuracy: {split: {readout: value}}}

``steps``/``tokens``/``seconds``: optimiser steps, non-PAD training tokens (BOS, content, EOS)
and wall seconds of the run up to the evaluation that met the criterion (``None`` when it never
did); ``total_*`` up to the stop; ``accuracy``: per-token accuracy at the stop, on the full sets.
``seconds`` is wall time of the ensemble that trained the seed (members share it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["ConvergenceRule", "MemberProgress", "min_accuracy"]


@dataclass(frozen=True)
class ConvergenceRule:
    """When to evaluate and when to stop (see module docstring)."""

    threshold: float = 0.9999
    eval_every: int = 500
    extra_steps: int = 3_000
    max_steps: int = 30_000
    eval_size: int = 2_048

    def __post_init__(self) -> None:
        if not (0.0 <= self.threshold <= 1.0):
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        for name in ("eval_every", "max_steps", "eval_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.extra_steps < 0:
            raise ValueError(f"extra_steps must be >= 0, got {self.extra_steps}")

    def to_dict(self) -> dict:
        return asdict(self)


def min_accuracy(accuracy: dict[str, dict[str, float]]) -> float:
    """Minimum over sets × readouts of ``{split: {readout: acc}}``."""
    vals = [v for per in accuracy.values() for v in per.values()]
    if not vals:
        raise ValueError("accuracy is empty")
    return float(min(vals))


@dataclass
class MemberProgress:
    """One seed's progress under a :class:`ConvergenceRule` (updated by the trainer)."""

    cohort: str
    seed: int
    task: str
    steps_done: int = 0
    tokens_done: int = 0
    first_pass: dict | None = None  # {"steps", "tokens", "seconds"} at the criterion
    stop_step: int | None = None

    def observe(
        self, accuracy: dict[str, dict[str, float]], seconds: float, rule: ConvergenceRule
    ) -> bool:
        """Record an evaluation made after ``steps_done`` steps;
        True when it first meets the rule.
        """
        if self.first_pass is None and min_accuracy(accuracy) >= rule.threshold:
            self.first_pass = {
                "steps": self.steps_done,
                "tokens": self.tokens_done,
                "seconds": seconds,
            }
            self.stop_step = min(rule.max_steps, self.steps_done + rule.extra_steps)
            return True
        return False

    def finished(self, rule: ConvergenceRule) -> bool:
        target = self.stop_step if self.stop_step is not None else rule.max_steps
        return self.steps_done >= target

    def record(self, accuracy: dict[str, dict[str, float]], seconds: float) -> dict:
        """The convergence record at the stop (``accuracy`` measured there)."""
        fp = self.first_pass or {}
        return {
            "cohort": self.cohort,
            "seed": int(self.seed),
            "task": self.task,
            "converged": self.first_pass is not None,
            "steps": fp.get("steps"),
            "tokens": fp.get("tokens"),
            "seconds": fp.get("seconds"),
            "total_steps": self.steps_done,
            "total_tokens": self.tokens_done,
            "total_seconds": seconds,
            "min_accuracy": min_accuracy(accuracy),
            "accuracy": accuracy,
        }

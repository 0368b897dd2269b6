"""The Pythia rung's glue: a suite's residual stream on held-out text, and text contrasts for
steering.

Everything downstream (SAEs, alignment maps, Haar tests, steering tables) lives in
:mod:`polyrot_utils.experiments.analysis`, :mod:`polyrot_utils.core.haar`,
:mod:`polyrot_utils.core.basis` and
:mod:`polyrot_utils.experiments.steering`, which work on plain ``acts[model][site]`` dictionaries.
This module
builds those dictionaries for a :class:`polyrot_utils.models.neox.Suite` (stand-ins or real
PolyPythias)::

    cfg = suite_config("quick", n_seeds=4)            # the SuiteConfig chapter 20 builds
    suite = standin_suite(cfg)
    acts = pythia_activations(suite, cfg, n_fit_seqs=64, n_eval_seqs=32)
    acts.fit["seed1"]["blocks.0.hook_resid_post"]     # (64 * T, d) float32
    acts.eval[...]                                     # (32 * T, d), other held-out text

Rows: ``n_fit_seqs + n_eval_seqs`` windows of held-out text
(:func:`polyrot_utils.models.neox.heldout_tokens`,
spread evenly over the held-out speeches' token stream, in stream order); the first ``n_fit_seqs``
give the fit batch, the rest the eval batch, so no token is in both and the eval text comes mostly
from other speeches. Rows are (sequence, position) in order, the same for every model: row ``i``
is the same token of the same text everywhere. ``skip_positions`` drops each window's first
positions (a window starts mid-text, yet the model treats its first token as a document start).

Steering contrasts (:data:`TEXT_CONTRASTS`) are defined on the *current* token, so they work with
any tokenizer: ``the_vs_of`` (the token " the" vs " of"), ``sentence_end_vs_word`` (".", "?", "!"
vs a lower-case word), ``number_vs_word`` (a token made of digits vs a lower-case word). The
behaviour a vector should move is the next-token distribution: log p(next ∈ S_A) − log p(next ∈
S_B), with S_A / S_B the tokens that follow group A / group B most distinctively in the fit text
(:func:`distinctive_next_tokens`), read at group-B positions of the eval text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from polyrot_utils.core import metrics, procrustes
from polyrot_utils.models.activations import (
    PairedActs,
    collect_activations,
    short_site,
    validate_sites,
)
from polyrot_utils.models.loading import ModelNotAvailableError, load_model, pythia_sites
from polyrot_utils.models.neox import (
    StandinConfig,
    Suite,
    SuiteConfig,
    heldout_tokens,
    pairwise_output_agreement,
)

__all__ = [
    "PREMISE_KL_BAR",
    "SUITE_DEFAULTS",
    "SUITE_PROFILES",
    "TEXT_CONTRASTS",
    "PythiaActs",
    "checkpoint_activations",
    "contrast_masks",
    "distinctive_next_tokens",
    "next_token_set_behaviour",
    "pythia_activations",
    "short_site",
    "suite_config",
    "suite_from_parameters",
    "suite_overrides_problem",
    "suite_premise",
    "text_batches",
    "token_classes",
]


#: the Pythia rung's suites by profile, like the toy's ``TOY_PROFILES``: ``smoke`` (seconds; the
#: numbers mean nothing), ``quick`` (the default build: 1.45 M-parameter stand-ins trained on a
#: public-domain corpus), ``paper`` (Pythia-70m's shape, d_model 512, 6 layers, 9 seeds), ``hub``
#: (the real PolyPythias ``EleutherAI/pythia-70m-seed1..9`` from the Hugging Face cache; add
#: ``{"allow_download": true}`` to fetch them). A chapter takes ``suite_profile`` plus a dict of
#: ``suite_overrides`` (any argument of :func:`suite_config`), so no chapter repeats the list.
SUITE_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(
        n_seeds=2,
        d_model=32,
        n_heads=2,
        d_mlp=128,
        n_ctx=32,
        vocab_size=1024,
        batch_size=8,
        n_steps=8,
        train_fraction=0.05,
        n_heldout_seqs=8,
        device="cpu",
    ),
    "quick": dict(),
    "paper": dict(
        n_seeds=9,
        d_model=512,
        n_layers=6,
        n_heads=8,
        d_mlp=2048,
        n_ctx=256,
        vocab_size=8192,
        batch_size=32,
        n_steps=800,
        lr=1e-3,
        n_heldout_seqs=256,
    ),
    "hub": dict(use_hub=True, n_seeds=9, n_heldout_seqs=256),
}


def suite_config(
    profile: str = "quick",
    *,
    use_hub: bool | None = None,
    model_names: Sequence[str] | None = None,
    revision: str | None = None,
    allow_download: bool | None = None,
    n_seeds: int | None = None,
    d_model: int | None = None,
    n_layers: int | None = None,
    n_heads: int | None = None,
    d_mlp: int | None = None,
    n_ctx: int | None = None,
    vocab_size: int | None = None,
    batch_size: int | None = None,
    n_steps: int | None = None,
    lr: float | None = None,
    train_fraction: float | None = None,
    n_heldout_seqs: int | None = None,
    seed: int | None = None,
    device: str | None = None,
) -> SuiteConfig:
    """The :class:`~polyrot_utils.models.neox.SuiteConfig` of ``profile`` (:data:`SUITE_PROFILES`),
    with any argument given here overriding it; every Pythia chapter calls it with the same
    ``suite_profile`` and ``suite_overrides``, so they all hit the same cached models.

    >>> suite_config("smoke").n_seeds, suite_config("smoke", n_seeds=3).n_seeds
    (2, 3)
    """
    if profile not in SUITE_PROFILES:
        raise ValueError(f"suite profile must be one of {sorted(SUITE_PROFILES)}, got {profile!r}")
    given = {k: v for k, v in locals().items() if k not in ("profile",) and v is not None}
    spec = {**SUITE_DEFAULTS, **SUITE_PROFILES[profile], **given}
    return SuiteConfig(
        base=StandinConfig(**{name: spec[name] for name in _STANDIN_ARGS}),
        **{field: spec[arg] for arg, field in _SUITE_ARGS.items() if arg != "model_names"},
        model_names=tuple(spec["model_names"]),
    )


#: :func:`suite_config`'s arguments that are :class:`SuiteConfig` fields (``seed`` is
#: ``seed_offset``), and those that are fields of its ``base`` :class:`StandinConfig`
_SUITE_ARGS = {
    "use_hub": "use_hub",
    "model_names": "model_names",
    "revision": "revision",
    "allow_download": "allow_download",
    "n_seeds": "n_seeds",
    "n_heldout_seqs": "n_heldout_seqs",
    "seed": "seed_offset",
    "device": "device",
}
_STANDIN_ARGS = (
    "d_model",
    "n_layers",
    "n_heads",
    "d_mlp",
    "n_ctx",
    "vocab_size",
    "batch_size",
    "n_steps",
    "lr",
    "train_fraction",
)

#: the ``quick`` suite: what every argument of :func:`suite_config` means when no profile sets it
#: — read off the defaults of :class:`SuiteConfig` and :class:`StandinConfig`, the one place
#: they are written
SUITE_DEFAULTS: dict[str, Any] = {
    **{arg: getattr(SuiteConfig(), field) for arg, field in _SUITE_ARGS.items()},
    **{arg: getattr(StandinConfig(), arg) for arg in _STANDIN_ARGS},
}


def suite_overrides_problem(overrides: Mapping[str, Any]) -> str | None:
    """``None`` when ``overrides`` names only arguments of :func:`suite_config`, else the reason."""
    if not isinstance(overrides, Mapping):
        return f"expected a mapping of suite_config arguments, got {type(overrides).__name__}"
    unknown = sorted(set(overrides) - set(SUITE_DEFAULTS))
    if unknown:
        return f"unknown suite argument(s) {unknown}; accepted: {sorted(SUITE_DEFAULTS)}"
    return None


def suite_from_parameters(
    suite_profile: str, suite_overrides: Mapping[str, Any], *, seed: int, device: str
) -> SuiteConfig:
    """A Pythia chapter's parameters -> its :class:`SuiteConfig`: ``suite_profile`` and
    ``suite_overrides`` (any argument of :func:`suite_config` but ``seed`` and ``device``, which
    are the chapter's own parameters). A bad key is refused before any work, by name."""
    why = suite_overrides_problem(suite_overrides)
    if why is None and {"seed", "device"} & set(suite_overrides):
        why = (
            "seed and device are the chapter's own parameters; "
            "set them directly, not in suite_overrides"
        )
    if why:
        raise ValueError(f"suite_overrides: {why}")
    return suite_config(suite_profile, seed=seed, device=device, **dict(suite_overrides))


def text_batches(
    suite: Suite, cfg: SuiteConfig, n_fit_seqs: int, n_eval_seqs: int, seq_len: int | None = None
) -> tuple[Tensor, Tensor]:
    """``(fit_tokens (n_fit_seqs, T), eval_tokens (n_eval_seqs, T))``: disjoint held-out windows
    (see the module docstring). ``seq_len`` defaults to the suite's held-out length."""
    if int(n_fit_seqs) < 1 or int(n_eval_seqs) < 1:
        raise ValueError(
            f"n_fit_seqs and n_eval_seqs must be >= 1, got {n_fit_seqs} and {n_eval_seqs}"
        )
    T = int(seq_len or suite.heldout_tokens.shape[1])
    tok = suite.tokenizer if suite.info.get("source") == "hub" else None
    toks = heldout_tokens(
        cfg.base.tokenizer_config, int(n_fit_seqs) + int(n_eval_seqs), T, tokenizer=tok
    )
    return toks[: int(n_fit_seqs)].clone(), toks[int(n_fit_seqs) :].clone()


@dataclass
class PythiaActs(PairedActs):
    """:class:`~polyrot_utils.models.activations.PairedActs` of a suite on held-out text, plus the
    token windows the rows came from: ``fit_tokens`` / ``eval_tokens`` ``(n_seqs, T)``, rows =
    positions ``>= skip_positions`` in (sequence, position) order."""

    fit_tokens: Tensor = field(default_factory=lambda: torch.zeros(0, 0, dtype=torch.long))
    eval_tokens: Tensor = field(default_factory=lambda: torch.zeros(0, 0, dtype=torch.long))
    skip_positions: int = 0

    def row_mask(self, tokens: Tensor) -> Tensor:
        """``(n, T)`` bool: the positions whose activations are rows (``>= skip_positions``)."""
        m = torch.ones(tokens.shape, dtype=torch.bool)
        m[:, : self.skip_positions] = False
        return m


def _position_mask(tokens: Tensor, skip_positions: int) -> Tensor | None:
    if skip_positions < 0 or skip_positions >= tokens.shape[1]:
        raise ValueError(
            f"skip_positions must be in [0, T={tokens.shape[1]}), got {skip_positions}"
        )
    if skip_positions == 0:
        return None
    m = torch.ones(tokens.shape, dtype=torch.bool)
    m[:, :skip_positions] = False
    return m


def pythia_activations(
    suite: Suite,
    cfg: SuiteConfig,
    *,
    n_fit_seqs: int,
    n_eval_seqs: int,
    sites: Sequence[str] | None = None,
    controls: Sequence[str] = ("untrained", "shuffled"),
    seq_len: int | None = None,
    skip_positions: int = 0,
    batch_size: int = 16,
) -> PythiaActs:
    """Activations of every seed of ``suite`` (plus the named ``controls``) at ``sites`` (default
    :func:`polyrot_utils.models.loading.pythia_sites`) on a fit and a disjoint eval batch of
    held-out text.

    ``KeyError`` for a control the suite lacks (hub suites have no ``shuffled``)."""

    missing = [c for c in controls if c not in suite.controls]
    if missing:
        raise KeyError(f"controls {missing} not in the suite; it has {sorted(suite.controls)}")
    models = dict(suite.models)
    members = list(models)
    models.update({f"control:{c}": suite.controls[c] for c in controls})
    first = models[members[0]]
    sites = validate_sites(first, sites) if sites is not None else pythia_sites(first)
    fit_tokens, eval_tokens = text_batches(suite, cfg, n_fit_seqs, n_eval_seqs, seq_len)
    out: dict[str, dict[str, dict[str, Tensor]]] = {"fit": {}, "eval": {}}
    for which, toks in (("fit", fit_tokens), ("eval", eval_tokens)):
        mask = _position_mask(toks, int(skip_positions))
        for name, model in models.items():
            out[which][name] = collect_activations(
                model, toks, sites, batch_size=batch_size, mask=mask
            )
    n_fit = next(iter(out["fit"][members[0]].values())).shape[0]
    n_eval = next(iter(out["eval"][members[0]].values())).shape[0]
    info: dict[str, Any] = {
        "n_fit_seqs": int(n_fit_seqs),
        "n_eval_seqs": int(n_eval_seqs),
        "seq_len": int(fit_tokens.shape[1]),
        "n_fit_rows": int(n_fit),
        "n_eval_rows": int(n_eval),
        "skip_positions": int(skip_positions),
        "d_model": int(first.cfg.d_model),
    }
    info["premise"] = suite_premise(suite, eval_tokens)
    return PythiaActs(
        out["fit"],
        out["eval"],
        list(sites),
        models,
        members,
        {},
        info,
        fit_tokens=fit_tokens,
        eval_tokens=eval_tokens,
        skip_positions=int(skip_positions),
    )


#: the paper's functional bar (its bar B, chapter 16): seeds whose mean next-token KL exceeds
#: this are not "the same function" in the paper's sense
PREMISE_KL_BAR = 1e-4


def suite_premise(suite: Suite, tokens: Tensor, max_seqs: int = 16) -> dict[str, Any]:
    """How far a suite meets the paper's premise (its seeds compute the same function): the mean
    next-token KL (nats/token) and top-1 agreement over ordered pairs of seeds on ``tokens``
    (first ``max_seqs`` windows), against :data:`PREMISE_KL_BAR`. ``{"rung": "pythia", "meets",
    "summary", "kl", "top1", "n_params", "source"}``."""
    agree = pairwise_output_agreement(suite.models, tokens[: int(max_seqs)])
    m = len(agree["names"])
    off = ~np.eye(m, dtype=bool)
    kl, top1 = float(agree["kl"][off].mean()), float(agree["top1"][off].mean())
    first = next(iter(suite.models.values()))
    n_params = int(sum(p.numel() for p in first.parameters()))
    source = suite.info.get("source", "standin")
    what = (
        "the hub's PolyPythias"
        if source == "hub"
        else f"stand-ins of {n_params / 1e6:.2f} M parameters"
    )
    meets = kl <= PREMISE_KL_BAR
    summary = (
        f"{what}: cross-seed KL {kl:.3g} nats/token, top-1 agreement {top1:.3f} -> "
        + ("meets" if meets else "does NOT meet")
        + f" the paper's premise (KL <= {PREMISE_KL_BAR:g})"
    )
    return {
        "rung": "pythia",
        "meets": meets,
        "summary": summary,
        "kl": kl,
        "top1": top1,
        "n_params": n_params,
        "source": source,
    }


def checkpoint_activations(
    suite: Suite,
    seed_name: str,
    fit_tokens: Tensor,
    eval_tokens: Tensor,
    sites: Sequence[str],
    *,
    steps: Sequence[int] | None = None,
    skip_positions: int = 0,
    device: str | None = "auto",
    batch_size: int = 16,
    skip_missing: bool = False,
) -> tuple[dict[int, dict[str, Tensor]], dict[int, dict[str, Tensor]]]:
    """``(fit, eval)``, each ``{step: {site: (n, d)}}``: one run's checkpoints (loaded one at a
    time through :func:`polyrot_utils.models.loading.load_model`, as ``load_model(path, revision)``)
    on
    the given tokens. ``steps``: default every checkpoint the suite lists. ``skip_missing``:
    leave out hub revisions that are not available offline instead of raising."""

    if seed_name not in suite.checkpoints:
        raise KeyError(
            f"seed_name {seed_name!r} has no checkpoints; seeds: {sorted(suite.checkpoints)}"
        )
    have = suite.checkpoints[seed_name]
    steps = sorted(have) if steps is None else sorted(int(s) for s in steps)
    bad = [s for s in steps if s not in have]
    if bad:
        raise KeyError(
            f"no checkpoints at steps {bad} for {seed_name!r}; available: {sorted(have)[:20]}…"
        )
    fit, ev = {}, {}
    fmask = _position_mask(fit_tokens, int(skip_positions))
    emask = _position_mask(eval_tokens, int(skip_positions))
    for s in steps:
        path, rev = have[s]
        try:
            model = suite.load_checkpoint(path, rev, device=device)
        except ModelNotAvailableError:
            if not skip_missing:
                raise
            continue
        fit[s] = collect_activations(
            model, fit_tokens, list(sites), batch_size=batch_size, mask=fmask
        )
        ev[s] = collect_activations(
            model, eval_tokens, list(sites), batch_size=batch_size, mask=emask
        )
        del model
    return fit, ev


# ----------------------------------------------------------------------------- text contrasts
#: Steering contrasts on the current token. ``a`` / ``b``: the token classes of
#: :func:`token_classes` whose positions give ``v = mean(x | A) − mean(x | B)``.
TEXT_CONTRASTS: dict[str, dict[str, str]] = {
    "the_vs_of": dict(
        a="the",
        b="of",
        description='current token " the" vs " of" (what follows an article vs a preposition)',
    ),
    "sentence_end_vs_word": dict(
        a="sentence_end",
        b="word",
        description='current token ends a sentence (".", "?", "!") vs a lower-case word',
    ),
    "number_vs_word": dict(
        a="number",
        b="word",
        description="current token is a number (digits only) vs a lower-case word",
    ),
}


def token_classes(tokenizer: Any, vocab_size: int) -> dict[str, np.ndarray]:
    """``{class: (vocab_size,) bool}`` over token ids, from each id's decoded text: ``the`` / ``of``
    (exactly " the" / " of"), ``sentence_end`` (".", "?", "!", optionally with a space before),
    ``number`` (digits only, optionally a leading space; at least one digit), ``word`` (a leading
    space then lower-case letters only)."""
    if int(vocab_size) < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
    out = {
        c: np.zeros(int(vocab_size), dtype=bool)
        for c in ("the", "of", "sentence_end", "number", "word")
    }
    n_tok = min(int(vocab_size), len(tokenizer))
    for i in range(n_tok):
        s = tokenizer.decode([i])
        st = s.strip()
        out["the"][i] = s == " the"
        out["of"][i] = s == " of"
        out["sentence_end"][i] = st in (".", "?", "!") and s in (".", "?", "!", " .", " ?", " !")
        out["number"][i] = st.isdigit() and s.lstrip(" ") == st and st.isascii()
        out["word"][i] = (
            s.startswith(" ") and st.isascii() and st.isalpha() and st.islower() and s[1:] == st
        )
    return out


def contrast_masks(
    tokens: Tensor, classes: Mapping[str, np.ndarray], contrast: str
) -> tuple[Tensor, Tensor]:
    """``(mask_a, mask_b)``, each ``(n, T)`` bool: the positions of ``tokens`` whose current token
    is in
    the contrast's class A / B (:data:`TEXT_CONTRASTS`; ``classes`` from :func:`token_classes`)."""
    if contrast not in TEXT_CONTRASTS:
        raise ValueError(f"contrast must be one of {sorted(TEXT_CONTRASTS)}, got {contrast!r}")
    spec = TEXT_CONTRASTS[contrast]
    t = torch.as_tensor(tokens)
    if t.ndim != 2:
        raise ValueError(f"tokens must be (n, T), got shape {tuple(t.shape)}")
    out = []
    for key in (spec["a"], spec["b"]):
        table = torch.as_tensor(np.asarray(classes[key]))
        if int(t.max()) >= table.numel():
            raise ValueError(
                f"token id {int(t.max())} is outside the class table of size {table.numel()}"
            )
        out.append(table[t])
    return out[0], out[1]


def distinctive_next_tokens(
    tokens: Tensor, mask_a: Tensor, mask_b: Tensor, k: int = 10, vocab_size: int | None = None
) -> tuple[list[int], list[int]]:
    """``(S_A, S_B)``: the ``k`` next tokens most typical of group A over group B and vice versa.

    From the empirical next-token distributions p_A, p_B at the A / B positions of ``tokens (n, T)``
    (the last position has no next token and is ignored): S_A = the top ``k`` by p_A − p_B, S_B the
    top ``k`` by p_B − p_A (only tokens with a positive difference). ``ValueError`` if a group has
    no
    position with a next token."""
    t = torch.as_tensor(tokens)
    V = int(vocab_size or int(t.max()) + 1)
    nxt = t[:, 1:]
    dists = []
    for name, m in (("mask_a", mask_a), ("mask_b", mask_b)):
        mm = torch.as_tensor(m, dtype=torch.bool)
        if mm.shape != t.shape:
            raise ValueError(
                f"{name} must have the tokens' shape {tuple(t.shape)}, got {tuple(mm.shape)}"
            )
        sel = nxt[mm[:, :-1]]
        if sel.numel() == 0:
            raise ValueError(f"{name} selects no position with a next token")
        dists.append(torch.bincount(sel, minlength=V).double() / sel.numel())
    diff = dists[0] - dists[1]
    order_a = torch.argsort(-diff)[: int(k)]
    order_b = torch.argsort(diff)[: int(k)]
    sa = [int(i) for i in order_a if diff[i] > 0]
    sb = [int(i) for i in order_b if diff[i] < 0]
    if not sa or not sb:
        raise ValueError(
            "the two groups' next-token distributions do not differ; no distinctive tokens"
        )
    return sa, sb


def next_token_set_behaviour(
    set_a: Sequence[int], set_b: Sequence[int], mask: Tensor | None = None
) -> Callable[[Tensor], Tensor]:
    """Behaviour ``logits (batch, pos, vocab) -> log p(next ∈ S_A) − log p(next ∈ S_B)`` at the
    ``mask`` positions (``(batch, pos)`` bool; None = every position); the softmax normaliser
    cancels, so it is ``logsumexp(logits[S_A]) − logsumexp(logits[S_B])``."""
    ia, ib = list(set_a), list(set_b)
    if not ia or not ib:
        raise ValueError("set_a and set_b must be non-empty")

    def f(logits: Tensor) -> Tensor:
        z = logits.float()
        diff = torch.logsumexp(z[..., ia], -1) - torch.logsumexp(z[..., ib], -1)
        return diff[mask.to(diff.device)] if mask is not None else diff

    return f


def processing_comparison(
    checkpoints: Mapping[str, tuple[Any, str]],
    tokens: Tensor,
    sites: Sequence[str],
    *,
    processings: Sequence[str] = ("none", "fold_ln", "tl_default"),
    reference: str = "none",
    device: str | None = "auto",
    batch_size: int = 16,
) -> list[dict[str, Any]]:
    """How TransformerLens's weight processing changes the residual basis and the fitted R.

    ``checkpoints``: two models as ``{name: (path, revision)}`` (e.g. two seeds' final
    checkpoints, loaded with :func:`polyrot_utils.models.loading.load_model`). For each processing
    and
    site: ``act_change`` = ‖acts_proc − acts_ref‖_F / ‖acts_ref − mean‖_F for the first model
    (0: the residual stream is untouched), ``ones_component`` = the fraction of the activations'
    centred variance along the all-ones axis (``center_writing_weights`` removes it), ``R_change`` =
    ‖R_proc − R_ref‖_F / √(2d) between the two models' Procrustes fits, and ``map_ev`` of that fit.
    """
    from polyrot_utils.models.activations import collect_activations

    if len(checkpoints) != 2:
        raise ValueError(f"checkpoints must name exactly two models, got {list(checkpoints)}")
    if reference not in processings:
        raise ValueError(f"reference {reference!r} must be one of processings {list(processings)}")
    names = list(checkpoints)
    acts: dict[str, dict[str, dict[str, Tensor]]] = {}
    for proc in processings:
        acts[proc] = {}
        for name in names:
            path, revision = checkpoints[name]
            model = load_model(path, revision=revision, processing=proc, device=device)
            acts[proc][name] = collect_activations(
                model, tokens, list(sites), batch_size=batch_size
            )
            del model
    rows = []
    for site in sites:
        ref_a = acts[reference][names[0]][site].double()
        ref_scale = float((ref_a - ref_a.mean(0)).norm())
        fits = {}
        for proc in [reference] + [p for p in processings if p != reference]:
            xa, xb = acts[proc][names[0]][site].double(), acts[proc][names[1]][site].double()
            fits[proc] = procrustes.fit_alignment(xa, xb, method="rotation")
            d = xa.shape[1]
            ones = torch.ones(d, dtype=torch.float64) / d**0.5
            xc = xa - xa.mean(0)
            rows.append(
                {
                    "site": site,
                    "processing": proc,
                    "act_change": float((xa - ref_a).norm()) / ref_scale,
                    "ones_component": float(((xc @ ones) ** 2).sum() / (xc**2).sum()),
                    "R_change": float(
                        np.linalg.norm(fits[proc].matrix - fits[reference].matrix) / np.sqrt(2 * d)
                    ),
                    "map_ev": float(
                        metrics.explained_variance(xb, torch.as_tensor(fits[proc].apply(xa)))
                    ),
                }
            )
    return rows

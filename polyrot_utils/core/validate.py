"""One input check for the whole package: array-like in, a checked real tensor (or array) out.

Every public function that takes activations, rotations or logits coerces them here, so bad
input fails the same way everywhere, before any work starts, with a ``ValueError`` that names
the argument::

    >>> import numpy as np
    >>> from polyrot_utils.core.validate import as_tensor
    >>> as_tensor([[1, 2], [3, 4]], "x", ndim=2).dtype   # lists and integers: float64
    torch.float64
    >>> as_tensor(np.ones(3), "x", ndim=2, shape="(n, d)")
    Traceback (most recent call last):
    ...
    ValueError: x must be 2-D with shape (n, d), got shape (3,)
    >>> as_tensor([1.0, float("nan")], "v")
    Traceback (most recent call last):
    ...
    ValueError: v contains NaN or infinite values

What is accepted: a ``torch.Tensor`` (detached; it stays on its device), a ``numpy.ndarray``, or
anything ``numpy.asarray`` turns into a real numeric array (nested lists, tuples, objects with
``__array__``), as scipy accepts. Refused: object, string, complex and boolean data. Integer
data becomes float64; floating data keeps its dtype unless ``dtype`` is given.

:func:`as_tensor` returns a torch tensor, :func:`as_array` the same checked data as a float64
numpy array (on the CPU). :func:`is_numpy_input` says whether a caller should hand numpy back
("numpy in, numpy out": anything that is not a torch tensor counts as numpy).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["ArrayLike", "as_array", "as_tensor", "is_numpy_input"]

#: What the package's numerical functions accept: numpy arrays and torch tensors (and, through
#: :func:`as_tensor`, anything numpy can turn into a real numeric array).
ArrayLike = np.ndarray | torch.Tensor


def is_numpy_input(x: Any) -> bool:
    """True unless ``x`` is a torch tensor: such input gets numpy results back."""
    return not isinstance(x, torch.Tensor)


def _real_numeric(dtype: np.dtype) -> bool:
    return dtype.kind in "fiu"  # float, signed or unsigned integer: not bool, complex, object, str


def as_tensor(
    x: Any,
    name: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    min_ndim: int = 0,
    shape: str | None = None,
    square: bool = False,
    min_size: int = 0,
    dtype: torch.dtype | None = None,
    finite: bool = True,
) -> torch.Tensor:
    """``x`` as a real floating-point torch tensor, checked; ``ValueError`` naming ``name`` if not.

    Args:
        x: a tensor, numpy array or array_like.
        name: the argument's name, used in every error message.
        ndim: the allowed number(s) of dimensions (``None``: any).
        min_ndim: at least this many dimensions.
        shape: how to describe the expected shape in messages, e.g. ``"(n, d)"``.
        square: the last two dimensions must be equal (matrices or stacks of them).
        min_size: the last dimension must be at least this long.
        dtype: convert to this torch dtype (default: keep a floating dtype, integers → float64).
        finite: refuse NaN and ±inf.

    Returns:
        The tensor, detached, on ``x``'s device (CPU for numpy and array_like input). It may share
        memory with ``x``; callers that write into it must copy.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"{name} must be real-valued, got dtype {t.dtype}")
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name} must be array_like{' ' + shape if shape else ''}, got "
                f"{type(x).__name__} ({exc})"
            ) from None
        if not _real_numeric(arr.dtype):
            what = "array" if isinstance(x, np.ndarray) else "array_like"
            raise ValueError(
                f"{name} must be a real numeric {what}{' of shape ' + shape if shape else ''}, "
                f"got {type(x).__name__} of dtype {arr.dtype}"
            )
        t = torch.from_numpy(np.ascontiguousarray(arr))
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if (dims is not None and t.ndim not in dims) or (
        square and (t.ndim < 2 or t.shape[-1] != t.shape[-2])
    ):
        if shape is None:
            want = " or ".join(f"{k}-D" for k in dims) if dims else "at least 2-D"
            shape = f"{'square and ' if square else ''}{want}"
        elif dims is not None and len(dims) == 1 and not square:
            shape = f"{dims[0]}-D with shape {shape}"
        raise ValueError(f"{name} must be {shape}, got shape {tuple(t.shape)}")
    if t.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions, got shape {tuple(t.shape)}"
        )
    if min_size and (t.ndim == 0 or t.shape[-1] < min_size):
        raise ValueError(
            f"{name} must have a last dimension of at least {min_size}, got shape {tuple(t.shape)}"
        )
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.to(torch.float64)
    if finite and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def as_array(x: Any, name: str, **checks: Any) -> np.ndarray:
    """:func:`as_tensor` (same ``checks``) as a float64 numpy array on the CPU."""
    checks.setdefault("dtype", torch.float64)
    return as_tensor(x, name, **checks).cpu().numpy()

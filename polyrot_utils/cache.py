"""Content-addressed artifact store and atomic writes.

Every artifact the book computes that is worth keeping (trained weights, activations, SAEs,
Haar null samples) lives in a cache directory, under a key that is a hash of the config that
produced it. Writes are atomic: a file is written to a temporary name in the same directory
and renamed into place, so an interrupted run never leaves a half-written artifact that a later
run would trust.

Formats: safetensors for tensors, npz for numpy arrays, json for everything else. Never pickle.

The cache root is ``$POLYROT_CACHE`` if set, else ``<repo>/.cache/polyrot`` when running from a
checkout, else ``~/.cache/polyrot``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import numpy as np

T = TypeVar("T")

_REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_root() -> Path:
    """The cache directory (created if missing). See the module docstring for the lookup order."""
    env = os.environ.get("POLYROT_CACHE")
    if env:
        root = Path(env).expanduser()
    elif (_REPO_ROOT / "pyproject.toml").exists():
        root = _REPO_ROOT / ".cache" / "polyrot"
    else:
        root = Path.home() / ".cache" / "polyrot"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _canonical(obj: Any) -> Any:
    """Turn a config into plain JSON types so its hash does not depend on dict order or dtype."""
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if hasattr(obj, "__dataclass_fields__"):
        return _canonical({k: getattr(obj, k) for k in obj.__dataclass_fields__})
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


def config_hash(config: Any, length: int = 16) -> str:
    """A stable hex digest of a config (dict, dataclass, list, scalars)."""
    blob = json.dumps(_canonical(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def artifact_dir(kind: str, config: Any) -> Path:
    """``<cache_root>/<kind>/<config_hash>/``; the config is written there as ``config.json``."""
    if not kind or "/" in kind:
        raise ValueError(f"kind must be a non-empty name without '/', got {kind!r}")
    path = cache_root() / kind / config_hash(config)
    path.mkdir(parents=True, exist_ok=True)
    cfg_file = path / "config.json"
    if not cfg_file.exists():
        atomic_write_json(cfg_file, _canonical(config))
    return path


def _atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, then rename)."""
    return _atomic_write(Path(path), lambda p: p.write_bytes(data))


def atomic_write_text(path: Path | str, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path | str, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    try:
        import torch

        if isinstance(obj, torch.Tensor):
            return obj.detach().cpu().tolist()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def atomic_save_npz(path: Path | str, **arrays: np.ndarray) -> Path:
    """Save numpy arrays to an ``.npz`` atomically (never pickled: object arrays are refused)."""
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise ValueError(f"array {name!r} has dtype object; npz artifacts must not need pickle")

    def write(p: Path) -> None:
        with open(p, "wb") as fh:
            np.savez(fh, **arrays)

    return _atomic_write(Path(path), write)


def load_npz(path: Path | str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def atomic_save_safetensors(path: Path | str, tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> Path:
    """Save a dict of torch tensors as safetensors, atomically. Tensors are made contiguous."""
    from safetensors.torch import save_file

    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    return _atomic_write(Path(path), lambda p: save_file(clean, str(p), metadata=meta))


def load_safetensors(path: Path | str, device: str = "cpu") -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(path), device=device)


def cached_json(kind: str, config: Any, compute: Callable[[], T], filename: str = "result.json") -> T:
    """Return the JSON artifact for ``config`` from the cache, computing and storing it if absent."""
    path = artifact_dir(kind, config) / filename
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    atomic_write_json(path, value)
    return value

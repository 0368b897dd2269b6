"""Content-addressed artifact store and atomic writes.

Every artifact the book computes that is worth keeping (trained weights, activations, SAEs,
Haar null samples) lives in a cache directory, under a key that is a hash of the config that
produced it. Writes are atomic: a file is written to a temporary name in the same directory
and renamed into place, so an interrupted run never leaves a half-written artifact that a later
run would trust.

Entries built through :func:`cached_entry` end with ``manifest.json`` (each file's size and
SHA-256), written last and checked whenever the entry is used: a damaged or partial entry is
reported once (:class:`CacheRepairWarning`, naming the path) and rebuilt; an exclusive file lock
(``<entry>/.lock``) makes concurrent builds of one entry do the work once. Files are created with
the user's umask (``0666 & ~umask``), so a cache shared between users stays readable.

Formats: safetensors for tensors, npz for numpy arrays, json for everything else. Never pickle.

The cache root is ``$POLYROT_CACHE`` if set, else ``<repo>/.cache/polyrot`` when running from a
checkout, else ``~/.cache/polyrot``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "MANIFEST_FILENAME",
    "CacheDamagedError",
    "CacheRepairWarning",
    "T",
    "artifact_dir",
    "atomic_save_npz",
    "atomic_save_safetensors",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "cache_root",
    "cached_entry",
    "cached_json",
    "check_entry",
    "clear_entry",
    "config_hash",
    "entry_lock",
    "file_digest",
    "load_npz",
    "load_safetensors",
    "verify_entry",
    "write_manifest",
]

T = TypeVar("T")

_REPO_ROOT = Path(__file__).resolve().parents[2]


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


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask: read from ``/proc/self/status`` (Linux) without changing it, else by
    setting and restoring it under a lock (``os.umask`` is process-wide)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        # mkstemp creates 0600; give the file the mode an ordinary open() would (0666 & ~umask),
        # so a cache or build folder shared between users of one machine stays readable.
        os.chmod(tmp_path, 0o666 & ~_umask())
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
    return atomic_write_text(
        path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    )


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
            np.savez(fh, allow_pickle=False, **arrays)

    return _atomic_write(Path(path), write)


def load_npz(path: Path | str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def atomic_save_safetensors(
    path: Path | str, tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None
) -> Path:
    """Save a dict of torch tensors as safetensors, atomically. Tensors are made contiguous."""
    from safetensors.torch import save_file

    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    return _atomic_write(Path(path), lambda p: save_file(clean, str(p), metadata=meta))


def load_safetensors(path: Path | str, device: str = "cpu") -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(path), device=device)


def cached_json(
    kind: str, config: Any, compute: Callable[[], T], filename: str = "result.json"
) -> T:
    """Return the JSON artifact for ``config`` from the cache,
    computing and storing it if absent.
    """
    box: dict[str, Any] = {}

    def build(entry: Path) -> None:
        box["value"] = compute()
        atomic_write_json(entry / filename, box["value"])

    entry = cached_entry(
        kind,
        config,
        build,
        (filename,),
        legacy_check=lambda e: json.loads((e / filename).read_text()),
    )
    if "value" in box:
        return box["value"]
    return json.loads((entry / filename).read_text())


# ----------------------------------------------------------------------------- entry manifests
#: Written last into a complete cache entry: each file's size and SHA-256.
MANIFEST_FILENAME = "manifest.json"
_LOCK_FILENAME = ".lock"


class CacheDamagedError(RuntimeError):
    """A cache entry (or downloaded file) is damaged and cannot be rebuilt here; the message
    names the file and says how to remove it."""


class CacheRepairWarning(UserWarning):
    """A damaged or partial cache entry was found and is being rebuilt (named in the message)."""


def file_digest(path: Path | str) -> dict[str, Any]:
    """``{"size": bytes, "sha256": hex}`` of a file (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return {"size": size, "sha256": h.hexdigest()}


def _entry_files(entry: Path) -> list[str]:
    """The entry's content files (relative names): everything but the manifest, hidden files
    (lock, temporaries) and directories."""
    return sorted(
        str(p.relative_to(entry))
        for p in entry.rglob("*")
        if p.is_file()
        and p.name != MANIFEST_FILENAME
        and not any(part.startswith(".") for part in p.relative_to(entry).parts)
    )


def write_manifest(entry: Path | str, files: Iterable[str] | None = None) -> Path:
    """Record size and SHA-256 of ``files`` (default: every content file) in ``manifest.json``,
    written last and atomically: an entry with a manifest is complete."""
    entry = Path(entry)
    names = sorted(files) if files is not None else _entry_files(entry)
    record = {"format": 1, "files": {name: file_digest(entry / name) for name in names}}
    return atomic_write_json(entry / MANIFEST_FILENAME, record)


def verify_entry(entry: Path | str, required: Iterable[str] = ()) -> str | None:
    """``None`` when ``entry`` is complete and intact, else one line saying what is wrong.

    Complete = ``manifest.json`` exists, lists every name in ``required``, and every listed file
    exists with the recorded size and SHA-256."""
    entry = Path(entry)
    man = entry / MANIFEST_FILENAME
    if not man.is_file():
        return f"{entry} has no {MANIFEST_FILENAME} (the entry was never completed)"
    try:
        files = json.loads(man.read_text())["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not a mapping")
    except (ValueError, KeyError, TypeError) as exc:
        return f"{man} is unreadable ({type(exc).__name__}: {exc})"
    for name in required:
        if name not in files:
            return f"{man} does not list {name}"
    stats = []
    for name, rec in files.items():
        f = entry / name
        if not f.is_file():
            return f"{f} is missing"
        st = f.stat()
        if st.st_size != rec.get("size"):
            return (
                f"{f} has {st.st_size} bytes where the manifest records {rec.get('size')} "
                "(truncated or overwritten)"
            )
        stats.append((name, st.st_size, st.st_mtime_ns, st.st_ino))
    mst = man.stat()
    signature = (mst.st_mtime_ns, mst.st_ino, tuple(stats))
    if (
        _VERIFIED.get(str(entry)) == signature
    ):  # hashed already in this process, nothing changed since
        return None
    for name, rec in files.items():
        f = entry / name
        if file_digest(f)["sha256"] != rec.get("sha256"):
            return f"{f} does not match its SHA-256 in the manifest (corrupted)"
    _VERIFIED[str(entry)] = signature
    return None


#: entries whose hashes matched in this process, with the stat signature they had then
_VERIFIED: dict[str, tuple] = {}


def _has_content(entry: Path) -> bool:
    return (
        any(n != "config.json" for n in _entry_files(entry)) or (entry / MANIFEST_FILENAME).exists()
    )


def clear_entry(entry: Path | str) -> None:
    """Remove an entry's content (its files and manifest), keeping ``config.json``, the lock and
    hidden files (another writer's temporary files: they are renamed into place or removed by
    their writer)."""
    import shutil

    entry = Path(entry)
    (entry / MANIFEST_FILENAME).unlink(missing_ok=True)
    for p in sorted(entry.iterdir()):
        if p.name == "config.json" or p.name.startswith("."):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


@contextmanager
def entry_lock(entry: Path | str) -> Iterator[None]:
    """An exclusive advisory lock on ``<entry>/.lock`` (``fcntl.flock``): concurrent builds of the
    same entry, in threads or processes, run one at a time, so the work is done once."""
    import fcntl

    entry = Path(entry)
    entry.mkdir(parents=True, exist_ok=True)
    fd = os.open(entry / _LOCK_FILENAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def check_entry(
    entry: Path | str,
    required: Sequence[str] = (),
    legacy_check: Callable[[Path], object] | None = None,
) -> str | None:
    """:func:`verify_entry`, plus adoption of entries written before manifests existed: when the
    manifest is absent but every ``required`` file is present and ``legacy_check(entry)`` (which
    should fully load them) succeeds, the manifest is written now and the entry is accepted.
    Returns ``None`` (usable), ``"absent"`` (nothing there), or the problem."""
    entry = Path(entry)
    problem = verify_entry(entry, required)
    if problem is None:
        return None
    if not _has_content(entry):
        return "absent"
    if (
        not (entry / MANIFEST_FILENAME).exists()
        and legacy_check is not None
        and all((entry / r).is_file() for r in required)
    ):
        try:
            legacy_check(entry)
        except Exception as exc:  # the legacy files do not load: damaged
            return f"{entry} holds files that do not load ({type(exc).__name__}: {exc})"
        write_manifest(entry)
        return None
    return problem


def cached_entry(
    kind: str,
    config: Any,
    build: Callable[[Path], None],
    required: Sequence[str],
    *,
    legacy_check: Callable[[Path], object] | None = None,
    force: bool = False,
) -> Path:
    """The verified entry directory for ``(kind, config)``, built by ``build(path)`` if absent,
    partial or damaged.

    ``build`` writes the entry's files (atomically) into ``path``; the manifest is written after
    it returns. A damaged or partial entry is reported once (a :class:`CacheRepairWarning`
    naming the path and the problem), cleared and rebuilt. The build runs under
    :func:`entry_lock`: a second process asking for the same entry meanwhile waits, then finds
    it complete and does not build it again.
    """
    path = artifact_dir(kind, config)
    if not force and check_entry(path, required, legacy_check) is None:
        return path
    with entry_lock(path):
        problem = None if force else check_entry(path, required, legacy_check)
        if problem is None and not force:
            return path
        if problem not in (None, "absent"):
            warnings.warn(
                f"damaged cache entry {path}: {problem}; rebuilding it",
                CacheRepairWarning,
                stacklevel=2,
            )
        clear_entry(path)
        build(path)
        write_manifest(path)
    return path

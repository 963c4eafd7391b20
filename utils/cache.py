"""The book's on-disk cache, in one place: where files go, how a model's weights are fingerprinted, and atomic writes.

Everything a chapter computes once and reuses (backbone activations, sentence embeddings, a domain-adapted language
model) lives under one root: ``$TRANSFER_BOOK_CACHE``, else ``<repo>/.cache`` in a checkout of the book (git-ignored),
else ``~/.cache/transfer_book`` when `utils` is installed as a package (never inside site-packages).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

__all__ = ["cache_root", "cache_dir", "fingerprint", "hash_tensors", "hash_json", "atomic_path", "save_tensors",
           "load_tensors", "save_result", "load_result", "clear_cache"]

_REPO = Path(__file__).resolve().parents[1]


def cache_root() -> Path:
    """The cache's root folder (see the module doc for the order in which it is chosen)."""
    env = os.environ.get("TRANSFER_BOOK_CACHE")
    if env:
        return Path(env).expanduser()
    if (_REPO / "_toc.yml").exists():  # a checkout of the book
        return _REPO / ".cache"
    return Path.home() / ".cache" / "transfer_book"


def cache_dir(kind: str) -> Path:
    """The (created) sub-folder for one kind of cached thing, e.g. 'features', 'embeddings', 'charlm'."""
    if not kind or "/" in kind or kind.startswith("."):
        raise ValueError(f"kind must be a plain folder name such as 'features', got {kind!r}.")
    path = cache_root() / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def hash_tensors(tensors: Iterator[tuple[str, torch.Tensor]], salt: str = "") -> str:
    """A hash of named tensors' names, shapes, dtypes and every byte of their values."""
    h = hashlib.sha1(salt.encode())
    for name, t in tensors:
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        if t.numel():
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def fingerprint(model: nn.Module | list[nn.Module], salt: str = "") -> str:
    """A hash of every weight and buffer, so a cache entry is never reused after the weights change (e.g. fine-tuning)."""
    modules = model if isinstance(model, (list, tuple)) else [model]
    return hash_tensors(((f"{i}.{k}", v) for i, m in enumerate(modules) for k, v in m.state_dict().items()),
                        salt or type(modules[0]).__name__ if modules else salt)


def hash_json(obj) -> str:
    """A short stable hash of any JSON-able description (data identity, settings)."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; when the block succeeds it replaces `path` in one step.

    Readers see the old file or the complete new one, never half of one; a crash leaves the old file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write tensors as safetensors, atomically."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    return Path(path)


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file written by `save_tensors` (no pickle)."""
    from safetensors.torch import load_file

    return load_file(str(path))


def _result_path(kind: str, key: dict) -> Path:
    if not isinstance(key, dict) or not key:
        raise TypeError(f"key must be a non-empty dict that describes the run (data, weights, recipe, seed), got {key!r}.")
    return cache_dir(kind) / f"{hash_json(key)}.json"


def save_result(kind: str, key: dict, value: dict) -> Path:
    """Store one run's results (a JSON-able dict) under the description `key`, so a later chapter can read them back
    with `load_result` instead of training the same run again. Written atomically, with the key inside."""
    if not isinstance(value, dict):
        raise TypeError(f"value must be a dict of results, e.g. {{'acc': 0.8}}, got {type(value).__name__}.")
    path = _result_path(kind, key)
    text = json.dumps({"key": key, "value": value}, sort_keys=True, default=str)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def load_result(kind: str, key: dict) -> dict | None:
    """The results `save_result` stored under exactly this `key`, or None when that run has not been saved."""
    path = _result_path(kind, key)
    if not path.exists():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unreadable: the caller trains the run again and overwrites it
    same = stored.get("key") == json.loads(json.dumps(key, sort_keys=True, default=str))
    return stored.get("value") if same else None


def clear_cache(kind: str | None = None) -> int:
    """Delete cached files (one kind, or all); returns how many files were removed."""
    root = cache_dir(kind) if kind else cache_root()
    files = [f for f in root.rglob("*") if f.is_file()] if root.exists() else []
    for f in files:
        f.unlink()
    return len(files)

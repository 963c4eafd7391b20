"""Saving and loading fine-tuned weights safely: safetensors (no pickle), atomic writes, clear errors."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from torch import nn

__all__ = ["save_checkpoint", "load_checkpoint", "read_metadata"]


def save_checkpoint(model: nn.Module, path: str | Path, meta: dict | None = None, overwrite: bool = True) -> Path:
    """Write the model's weights (+ JSON-able metadata) as safetensors; atomic, so a crash never leaves half a file."""
    from safetensors.torch import save_model

    path = Path(path).expanduser()
    if path.suffix != ".safetensors":
        raise ValueError(f"Use a '.safetensors' file name (got {path.name!r}): the format is checked by its extension.")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it, or choose another name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_model(model, tmp, metadata={"meta": json.dumps(meta or {})})
        os.replace(tmp, path)  # the old checkpoint stays intact until the new one is complete
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_metadata(path: str | Path) -> dict:
    """The metadata stored beside the weights (e.g. class names, backbone name), without loading tensors."""
    from safetensors import safe_open

    with safe_open(str(_existing(path)), framework="pt") as f:
        return json.loads((f.metadata() or {}).get("meta", "{}"))


def _existing(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}. Save one first with save_checkpoint(model, {str(path)!r}).")
    return path


def load_checkpoint(model: nn.Module, path: str | Path, strict: bool = True) -> dict:
    """Load weights saved by `save_checkpoint` into `model` (in place); returns the stored metadata."""
    from safetensors.torch import load_model

    path = _existing(path)
    try:
        load_model(model, str(path), strict=strict)
    except RuntimeError as exc:
        msg = str(exc).splitlines()[0]
        raise ValueError(f"{path.name} does not fit this model ({msg}). Build the same architecture and head size "
                         f"first (metadata: {read_metadata(path)}).") from None
    return read_metadata(path)

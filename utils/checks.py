"""Checks at the boundary of every public helper, in one place: each names the argument, what it received and the fix.

A reader's own data meets the book's API here. The rule: reject bad input early, with a message a person can act on,
instead of letting it surface as a shape error deep inside torch (or, worse, as a silently wrong answer).
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

__all__ = ["check_int", "check_number", "check_fraction", "check_lr", "check_choice", "check_same_length", "check_texts",
           "check_images", "check_labels", "check_nonempty", "MAX_CHARS"]

MAX_CHARS = 2000  # a review is ~100 characters; a "text" far longer is almost surely a whole file or a concatenation


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_int(value, name: str, lo: int | None = None, hi: int | None = None, hint: str = "") -> int:
    """An integer in [lo, hi] (either bound optional); bools and floats are refused, NumPy integers accepted."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {_show(value)} ({type(value).__name__}).{' ' + hint if hint else ''}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        span = (f"from {lo} to {hi}" if lo is not None and hi is not None else f">= {lo}" if lo is not None else f"<= {hi}")
        raise ValueError(f"{name} must be an integer {span}, got {value}.{' ' + hint if hint else ''}")
    return value


def check_number(value, name: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                 hi_open: bool = False, hint: str = "") -> float:
    """A finite real number within the bounds (open or closed at each end); NaN, inf and bools are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {_show(value)} ({type(value).__name__}).{' ' + hint if hint else ''}")
    value = float(value)
    bad = not math.isfinite(value)
    bad |= lo is not None and (value <= lo if lo_open else value < lo)
    bad |= hi is not None and (value >= hi if hi_open else value > hi)
    if bad:
        left = "" if lo is None else f"{'(' if lo_open else '['}{lo:g}"
        right = "" if hi is None else f"{hi:g}{')' if hi_open else ']'}"
        span = f"in {left or '(-inf'}, {right or 'inf)'}"
        raise ValueError(f"{name} must be a finite number {span}, got {value!r}.{' ' + hint if hint else ''}")
    return value


def check_fraction(value, name: str) -> float:
    """A multiplier in (0, 1]: 1 = no change, 0.1 = ten times lower."""
    return check_number(value, name, 0, 1, lo_open=True, hint="(1 = no change, 0.1 = ten times lower)")


def check_lr(value, name: str = "lr") -> float:
    """A learning rate: a positive finite number."""
    return check_number(value, name, 0, None, lo_open=True, hint="Typical values: 1e-3 for a new head, 1e-4..1e-5 "
                                                                 "for pretrained layers.")


def check_choice(value, name: str, choices: Iterable):
    """One of a fixed set of names, listing the valid ones."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"Unknown {name} {_show(value)}; choose one of: {', '.join(map(str, choices))}.")
    return value


def check_same_length(a, b, name_a: str, name_b: str) -> int:
    """Two sequences that pair up element by element (images and labels, texts and labels, labels and groups)."""
    if len(a) != len(b):
        raise ValueError(f"{name_a} and {name_b} must have the same length: {len(a)} vs {len(b)}. "
                         "They pair up one to one; check that neither was filtered or sliced on its own.")
    return len(a)


def check_nonempty(obj, name: str, fix: str = "") -> int:
    """A dataset, loader or list with at least one element (its length is returned)."""
    n = len(obj) if hasattr(obj, "__len__") else None
    if n == 0:
        raise ValueError(f"{name} is empty.{' ' + fix if fix else ' Check the split, the filters and the subsample size.'}")
    return -1 if n is None else n


def check_texts(texts, name: str = "texts", max_chars: int = MAX_CHARS) -> list[str]:
    """A non-empty list of non-blank strings, none absurdly long; a bare string is refused (it is not a list of texts)."""
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a list of strings, not one string (it would be read character by character); "
                        f"wrap it: [{texts[:40]!r}].")
    if texts is None or not hasattr(texts, "__iter__") or isinstance(texts, (bytes, dict)):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}.")
    texts = list(texts)
    if not texts:
        raise ValueError(f"{name} is empty: pass at least one text.")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] is {type(t).__name__} ({_show(t)}), not a string; drop or fill missing values first.")
        if not t.strip():
            raise ValueError(f"{name}[{i}] is empty or blank; there is nothing to read. Remove it first.")
        if max_chars and len(t) > max_chars:
            raise ValueError(f"{name}[{i}] has {len(t):,} characters (limit {max_chars:,}); split it into separate texts, "
                             "or pass a larger max_chars= if it really is one text.")
    return texts


def check_images(x, name: str = "images", channels: int | None = 3) -> torch.Tensor:
    """A float (N, C, H, W) tensor in [0, 1] with no NaN/inf; uint8 is scaled, 0-255 floats and normalised input refused."""
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch tensor (N, C, H, W); got {type(x).__name__}. "
                        "Convert arrays with utils.images_from_arrays (any size, grayscale or RGB).")
    if x.ndim != 4:
        raise ValueError(f"{name} must be a batch (N, C, H, W); got shape {tuple(x.shape)}. One image: x[None].")
    if channels is not None and x.shape[1] != channels:
        hint = (" Channels-last input? Use x.permute(0, 3, 1, 2)." if x.shape[-1] == channels else
                " Grayscale? Use x.expand(-1, 3, -1, -1), or utils.images_from_arrays.")
        raise ValueError(f"{name} must have {channels} channels in dim 1; got shape {tuple(x.shape)}.{hint}")
    if x.dtype == torch.uint8:
        return x.float() / 255
    if not x.is_floating_point():
        raise TypeError(f"{name} must be uint8 (0-255) or float (0-1); got {x.dtype}.")
    if x.numel():
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf values ({int((~torch.isfinite(x)).sum())} of them); "
                             "fix or drop those images.")
        lo, hi = float(x.min()), float(x.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            hint = ("They look like 0-255 values: divide by 255." if hi > 2 and lo >= 0 else
                    "They look normalised already: pass raw [0, 1] images; the helpers normalise with the model's own "
                    "mean and std.")
            raise ValueError(f"{name} must be floats in [0, 1]; these span [{lo:.2f}, {hi:.2f}]. {hint}")
    return x


def check_labels(y, name: str = "labels", num_classes: int | None = None) -> torch.Tensor:
    """Integer class indices (a 1-D long tensor), all in [0, num_classes) when that is given."""
    if isinstance(y, torch.Tensor):
        t = y
    else:
        arr = np.asarray(y)
        if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and arr.size and np.all(arr == np.round(arr))):
            raise TypeError(f"{name} must be integer class indices, got dtype {arr.dtype}"
                            f"{' (e.g. ' + _show(arr.ravel()[0]) + ')' if arr.size else ''}. Map class names to indices first.")
        t = torch.as_tensor(arr.astype(np.int64))
    if t.is_floating_point():
        if t.numel() and not torch.equal(t, t.round()):
            raise TypeError(f"{name} must be integer class indices, got fractional values (e.g. {float(t.flatten()[0])}).")
        t = t.long()
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one class index per example); got shape {tuple(t.shape)}. "
                         "One-hot labels? Use labels.argmax(1).")
    t = t.long()
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"{name} must be >= 0; found {int(t.min())}. Class indices run from 0 to num_classes - 1.")
    if num_classes is not None and t.numel() and int(t.max()) >= num_classes:
        raise ValueError(f"{name} has class index {int(t.max())} but the model has {num_classes} outputs (0..{num_classes - 1}). "
                         "Re-number the classes, or build the head with more outputs (utils.replace_head).")
    return t


"""Checks at the boundary of every public helper, in one place: each names the argument, what it received and the fix.

A reader's own data meets the book's API here. The rule: reject bad input early, with a message a person can act on,
instead of letting it surface as a shape error deep inside torch (or, worse, as a silently wrong answer).
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

__all__ = ["check_int", "check_seed", "check_size", "check_number", "check_fraction", "check_lr", "check_choice",
           "check_same_length", "check_texts", "check_names", "check_images", "check_labels", "check_features",
           "check_indices", "check_nonempty", "check_model", "check_callable", "check_json", "MAX_CHARS", "MAX_SEED"]

MAX_CHARS = 2000  # a review is ~100 characters; a "text" far longer is almost surely a whole file or a concatenation
MAX_SEED = 2**32 - 1  # NumPy's limit for a seed; torch accepts the same range


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


def check_seed(value, name: str = "seed") -> int:
    """A random seed: an integer from 0 to 2**32 - 1 (NumPy's range), so it never reaches numpy/torch as an error."""
    return check_int(value, name, 0, MAX_SEED, hint="Any fixed integer works, e.g. 0; use several seeds to measure noise.")


def check_size(value, name: str, lo: int = 1, allow_none: bool = False, hint: str = "") -> int | None:
    """A count or a size in pixels: an integer >= lo (None allowed when `allow_none`, meaning 'the default')."""
    if value is None and allow_none:
        return None
    return check_int(value, name, lo, hint=hint or ("(None for the default)" if allow_none else ""))


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
    for obj, nm in ((a, name_a), (b, name_b)):
        if not hasattr(obj, "__len__") or isinstance(obj, str):
            raise TypeError(f"{nm} must be a sequence (list, array or tensor), got {_show(obj)} ({type(obj).__name__}).")
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


def check_names(names, name: str = "classes", n: int | None = None) -> list[str]:
    """Distinct, non-empty strings (class or label names), one per output when `n` is given; a bare string is refused."""
    if isinstance(names, str):
        raise TypeError(f"{name} must be a list of names, not one string (it would be read letter by letter: "
                        f"{list(names)[:4]}...); wrap it: [{names!r}].")
    if names is None or not hasattr(names, "__iter__") or isinstance(names, (bytes, dict)):
        raise TypeError(f"{name} must be a list of names, e.g. ['cat', 'dog']; got {_show(names)} ({type(names).__name__}).")
    names = list(names)
    if not names:
        raise ValueError(f"{name} is empty: name at least one class, e.g. ['cat', 'dog'].")
    for i, c in enumerate(names):
        if not isinstance(c, str) or not c.strip():
            raise TypeError(f"{name}[{i}] is {_show(c)} ({type(c).__name__}); names must be non-empty strings. "
                            f"Convert them: [str(c) for c in {name}].")
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise ValueError(f"{name} must be distinct; {dup} appear more than once.")
    if n is not None and len(names) != n:
        raise ValueError(f"{name} has {len(names)} names but the model has {n} outputs; give one name per output.")
    return names


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
    if isinstance(y, str) or y is None or isinstance(y, dict) or not (torch.is_tensor(y) or hasattr(y, "__len__")):
        raise TypeError(f"{name} must be a sequence of integer class indices (list, array or tensor), got {_show(y)} "
                        f"({type(y).__name__}).")
    if isinstance(y, torch.Tensor):
        t = y
        if t.dtype == torch.bool:
            raise TypeError(f"{name} must be integer class indices, got a bool tensor; use {name}.long() if True/False "
                            "really mean classes 1/0.")
    else:
        arr = np.asarray(y)
        if arr.dtype.kind in "OUS" and arr.size:
            raise TypeError(f"{name} must be integer class indices, got {_show(arr.ravel()[0])} ({type(arr.ravel()[0]).__name__}). "
                            "Map class names to indices first, e.g. [classes.index(c) for c in names].")
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
        raise ValueError(f"{name} has class index {int(t.max())} but there are only {num_classes} classes "
                         f"(indices 0..{num_classes - 1}). Re-number the labels, or list every class (and build the "
                         "model's head with that many outputs: utils.replace_head).")
    return t


def check_features(x, name: str = "features") -> torch.Tensor:
    """Cached features as a float (N, D) tensor with N >= 1 and no NaN/inf (arrays are converted)."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{name} must be a numeric (N, D) array, got dtype {x.dtype}.")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a float tensor (N, D) of features, got {type(x).__name__}.")
    if x.ndim != 2:
        hint = " Flatten pooled maps first: x.flatten(1)." if x.ndim > 2 else " One example? Use x[None]."
        raise ValueError(f"{name} must be 2-D (examples, features); got shape {tuple(x.shape)}.{hint}")
    if len(x) == 0:
        raise ValueError(f"{name} is empty (0 rows); check the split and the subsample size.")
    x = x.float()
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf ({int((~torch.isfinite(x)).sum())} values); recompute them, or "
                         "drop those rows together with their labels.")
    return x


def check_model(model, name: str = "model") -> torch.nn.Module:
    """A torch nn.Module (the helpers read its parameters, its head and its data_config)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{name} must be a torch nn.Module, got {_show(model)} ({type(model).__name__}). "
                        "Build one with utils.create_backbone(...) or utils.small_cnn(...).")
    return model


def check_callable(fn, name: str, hint: str = "", allow_none: bool = True):
    """A function or transform (None allowed by default, meaning 'none')."""
    if fn is None and allow_none:
        return None
    if not callable(fn):
        raise TypeError(f"{name} must be callable (a function or transform){'' if not allow_none else ' or None'}, got "
                        f"{_show(fn)} ({type(fn).__name__}).{' ' + hint if hint else ''}")
    return fn


def _json_problem(obj, where: str) -> str | None:
    if obj is None or isinstance(obj, (str, bool, int)):
        return None
    if isinstance(obj, float):
        return None if math.isfinite(obj) else f"{where} is {obj!r}, which JSON cannot store; use None or a string"
    if isinstance(obj, (list, tuple)):
        return next(filter(None, (_json_problem(v, f"{where}[{i}]") for i, v in enumerate(obj))), None)
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                return f"{where} has a key {_show(k)} of type {type(k).__name__}; JSON keys must be strings"
            problem = _json_problem(v, f"{where}[{k!r}]")
            if problem:
                return problem
        return None
    fix = (".item() (one number) or .tolist()" if isinstance(obj, (np.ndarray, np.generic, torch.Tensor))
           else "str(...), or a list/dict of plain numbers and strings")
    return f"{where} is {_show(obj)} (type {type(obj).__name__}), which JSON cannot store; convert it with {fix}"


def check_json(meta, name: str = "meta") -> dict:
    """A dict of plain JSON values (str keys; str, int, float, bool, None, lists, dicts), naming the first bad entry."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise TypeError(f"{name} must be a dict of JSON values, e.g. {{'classes': ['cat', 'dog']}}; got {type(meta).__name__}.")
    problem = _json_problem(meta, name)
    if problem:
        raise TypeError(f"{problem}. Checkpoint metadata is stored as JSON text beside the weights (no pickle).")
    return meta


def check_indices(indices, name: str = "indices", n: int | None = None) -> torch.Tensor:
    """Row numbers (a 1-D long tensor), each in [0, n) when n is given; bool masks are refused (use .nonzero())."""
    if isinstance(indices, str) or indices is None or not (torch.is_tensor(indices) or hasattr(indices, "__len__")):
        raise TypeError(f"{name} must be a sequence of row numbers, got {_show(indices)} ({type(indices).__name__}).")
    arr = indices.cpu().numpy() if torch.is_tensor(indices) else np.asarray(indices)
    if arr.dtype.kind == "b":
        raise TypeError(f"{name} is a True/False mask; pass row numbers instead: np.flatnonzero(mask).")
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integer row numbers, got dtype {arr.dtype}.")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}.")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or (n is not None and arr.max() >= n)):
        raise ValueError(f"{name} must lie in 0..{'' if n is None else n - 1}; found {int(arr.min() if arr.min() < 0 else arr.max())}.")
    return torch.from_numpy(arr)

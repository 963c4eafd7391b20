"""Saving and loading fine-tuned weights safely: safetensors (no pickle), atomic writes, clear errors.

Two levels. `save_checkpoint` / `load_checkpoint` store and restore weights for a model you build yourself.
`save_model` / `load_model` also store how to rebuild it (a bundled, timm or torchvision backbone with its head size,
or a `SmallCNN`), so one call gives back a ready model. Both keep the model's input convention with the weights:
its `data_config` (mean/std, the resolution it was fine-tuned at, interpolation, crop), `fine_tuned_at` and
`classes`, so `utils.classify` on the reloaded model prepares images exactly as during fine-tuning.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from .checks import check_json, check_model, check_names

__all__ = ["save_checkpoint", "load_checkpoint", "read_metadata", "save_model", "load_model", "MODEL_FORMAT"]

MODEL_FORMAT = "transfer-book-model/1"
_CONVENTION = "convention"  # safetensors metadata key for data_config / fine_tuned_at / classes (beside "meta")
_RESERVED = ("format", "arch", "backbone", "num_classes", "head_dropout", "classes", "widths", "input_size", "norm",
             "dropout", "in_chans")


def _check_path(path, verb: str) -> Path:
    if not isinstance(path, (str, Path)) or not str(path).strip():
        raise TypeError(f"path must be a file name (str or Path) ending in .safetensors, got {path!r}.")
    path = Path(path).expanduser()
    if path.suffix != ".safetensors":
        raise ValueError(f"Use a '.safetensors' file name (got {path.name!r}): the format is checked by its extension. "
                         f"E.g. {path.with_suffix('.safetensors').name!r}.")
    if verb == "load" and not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}. Save one first with utils.save_model(model, {str(path)!r}, "
                                "classes=[...]) (or utils.save_checkpoint).")
    return path


def _convention(model: nn.Module) -> dict:
    from .models import DataConfig

    out = {}
    cfg = getattr(model, "data_config", None)
    if isinstance(cfg, DataConfig):
        out["data_config"] = asdict(cfg)
    if getattr(model, "fine_tuned_at", None) is not None:
        out["fine_tuned_at"] = int(model.fine_tuned_at)
    if getattr(model, "classes", None):
        out["classes"] = list(model.classes)
    return out


def _restore_convention(model: nn.Module, conv: dict) -> None:
    from .models import DataConfig, track_fine_tuning

    if "data_config" in conv:
        c = dict(conv["data_config"])
        model.data_config = DataConfig(tuple(c.pop("mean")), tuple(c.pop("std")), **c)
        track_fine_tuning(model)
    if "fine_tuned_at" in conv:
        model.fine_tuned_at = conv["fine_tuned_at"]
    if "classes" in conv:
        model.classes = list(conv["classes"])


def save_checkpoint(model: nn.Module, path: str | Path, meta: dict | None = None, overwrite: bool = True) -> Path:
    """Write the model's weights (+ JSON-able metadata) as safetensors; atomic, so a crash never leaves half a file.

    The model's input convention (`data_config`, `fine_tuned_at`, `classes`) is stored too; `load_checkpoint`
    restores it."""
    from safetensors.torch import save_model as st_save_model

    check_model(model)
    path = _check_path(path, "save")
    meta = check_json(meta, "meta")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}.")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it, or choose another name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        st_save_model(model, tmp, metadata={"meta": json.dumps(meta), _CONVENTION: json.dumps(_convention(model))})
        os.replace(tmp, path)  # the old checkpoint stays intact until the new one is complete
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _header(path: Path) -> dict[str, str]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable safetensors checkpoint ({str(exc).splitlines()[0]}): the file is "
                         f"damaged, truncated (an interrupted copy or download?) or of another format. Copy it again, or "
                         f"re-save the model with utils.save_model / utils.save_checkpoint.") from None


def _json_field(header: dict, key: str, path: Path) -> dict:
    try:
        value = json.loads(header.get(key, "{}"))
    except json.JSONDecodeError:
        raise ValueError(f"{path} has unreadable {key!r} metadata (not JSON); it was not written by utils.save_checkpoint. "
                         "Re-save it, or load the weights with safetensors.torch.load_file.") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} has {key!r} metadata that is not a JSON object.")
    return value


def read_metadata(path: str | Path) -> dict:
    """The metadata stored beside the weights (e.g. class names, backbone name), without loading tensors."""
    path = _check_path(path, "load")
    return _json_field(_header(path), "meta", path)


def load_checkpoint(model: nn.Module, path: str | Path, strict: bool = True) -> dict:
    """Load weights saved by `save_checkpoint` into `model` (in place), restore its stored input convention
    (`data_config`, `fine_tuned_at`, `classes`), and return the stored metadata."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model as st_load_model

    check_model(model)
    path = _check_path(path, "load")
    header = _header(path)
    meta, conv = _json_field(header, "meta", path), _json_field(header, _CONVENTION, path)
    try:
        st_load_model(model, str(path), strict=strict)
    except RuntimeError as exc:
        msg = str(exc).splitlines()[0]
        raise ValueError(f"{path.name} does not fit this model ({msg}). Build the same architecture and head size "
                         f"first (metadata: {meta}), or rebuild it from the file with utils.load_model(path) if it "
                         "was saved with utils.save_model.") from None
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path} could not be read ({str(exc).splitlines()[0]}): the file is damaged or truncated. Copy "
                         "it again, or re-save the model.") from None
    _restore_convention(model, conv)
    return meta


# --- One call each way: the model with everything it takes to rebuild it -------------------------------------------
_BUNDLED_TIMM = {f"tf_efficientnet_lite{v}": f"efficientnet_lite{v}" for v in (0, 1, 2)}


def _backbone_name(model: nn.Module, backbone: str | None) -> str:
    if backbone is not None:
        if not isinstance(backbone, str) or not backbone:
            raise TypeError(f"backbone must be a name create_backbone accepts (e.g. 'torchvision/resnet18'), got {backbone!r}.")
        return backbone
    name = getattr(model, "backbone_name", None)
    if name:
        return name
    arch = (getattr(model, "pretrained_cfg", None) or {}).get("architecture")
    if arch:
        return _BUNDLED_TIMM.get(arch, f"timm/{arch}")
    raise ValueError(f"Cannot tell which architecture this {type(model).__name__} is, so it could not be rebuilt without "
                     "pickle. Pass backbone='torchvision/<name>' or 'timm/<name>' (the name you built it with), or keep "
                     "the model's code and use utils.save_checkpoint / utils.load_checkpoint instead.")


def _describe(model: nn.Module, backbone: str | None) -> dict:
    from .groups import get_classifier
    from .smallcnn import SmallCNN

    if isinstance(model, SmallCNN):  # the keys utils.smallcnn.load_small_cnn reads too
        return {"arch": "SmallCNN", "widths": [blk[0].out_channels for blk in model.features],
                "in_chans": model.features[0][0].in_channels, "input_size": model.data_config.input_size,
                "norm": model.norm, "dropout": model.dropout, "num_classes": model.classifier.out_features}
    if type(model).__module__.startswith(("transformers", "peft")) or hasattr(getattr(model, "config", None), "model_type"):
        raise TypeError(f"{type(model).__name__} is a Hugging Face text model: save it with "
                        "utils.bert.save_classifier(model, tokenizer, folder) instead.")
    name = _backbone_name(model, backbone)
    head = get_classifier(model)
    dropout = 0.0
    if isinstance(head, nn.Sequential) and isinstance(head[-1], nn.Linear):
        dropout = float(head[0].p) if isinstance(head[0], nn.Dropout) else 0.0
        head = head[-1]
    if not isinstance(head, nn.Linear):
        raise ValueError(f"The head of this {type(model).__name__} is a {type(head).__name__}, not nn.Linear; save it with "
                         "utils.save_checkpoint and rebuild it by hand.")
    return {"arch": "backbone", "backbone": name, "num_classes": head.out_features, "head_dropout": dropout}


def _outputs(desc: dict) -> int:
    return int(desc["num_classes"])


def save_model(model: nn.Module, path: str | Path, classes: Sequence[str] | None = None, meta: dict | None = None,
               backbone: str | None = None, overwrite: bool = True) -> Path:
    """Save a fine-tuned model so that `load_model(path)` rebuilds it in one call: safetensors weights (no pickle) plus
    its architecture (bundled/timm/torchvision backbone name and head size, or a SmallCNN's widths), `classes`
    (one name per output; default `model.classes`; they are also set as `model.classes`), its input convention (`data_config`, `fine_tuned_at`) and `meta`.

    `backbone` names the architecture when the model does not record it (e.g. a torchvision model built directly).
    """
    check_model(model)
    desc = _describe(model, backbone)
    if classes is None:
        classes = getattr(model, "classes", None)
    if classes is not None:
        classes = check_names(classes, "classes", _outputs(desc))
    meta = check_json(meta, "meta")
    clash = sorted(set(meta) & set(_RESERVED))
    if clash:
        raise ValueError(f"meta may not use the keys {clash}: save_model writes them itself. Rename them.")
    full = {**meta, "format": MODEL_FORMAT, **desc, "classes": classes}
    if classes is not None:
        model.classes = classes  # so utils.classify names the outputs, here and after load_model
    return save_checkpoint(model, path, full, overwrite=overwrite)


def load_model(path: str | Path, device: torch.device | str | None = None) -> nn.Module:
    """A ready model from a `save_model` (or `utils.smallcnn.save_small_cnn`) file: the architecture rebuilt (no
    pretrained download needed, no pickle), the weights loaded strictly, and `data_config`, `fine_tuned_at` and
    `classes` restored, in eval mode on `device` (default CPU). The stored metadata: `utils.read_metadata(path)`."""
    from .models import create_backbone, replace_head
    from .smallcnn import SmallCNN

    path = _check_path(path, "load")
    meta = read_metadata(path)
    arch = meta.get("arch")
    classes = meta.get("classes")
    if arch == "SmallCNN":
        n = meta.get("num_classes") or len(classes or ())
        model = SmallCNN(n, tuple(meta["widths"]), in_chans=meta.get("in_chans", 3), input_size=meta["input_size"],
                         norm=meta.get("norm", True), dropout=meta.get("dropout", 0.0))
    elif arch == "backbone":
        model = create_backbone(meta["backbone"], pretrained=False)  # the file holds every weight
        n, dropout = int(meta["num_classes"]), float(meta.get("head_dropout", 0.0))
        from .groups import get_classifier

        head = get_classifier(model)
        if dropout > 0 or not isinstance(head, nn.Linear) or head.out_features != n:
            replace_head(model, n, dropout)
    else:
        raise ValueError(f"{path} was not written by utils.save_model (its metadata has no known 'arch': {meta}). Build "
                         "the model yourself and load the weights with utils.load_checkpoint(model, path).")
    load_checkpoint(model, path)
    if classes:
        model.classes = list(classes)
    return model.to(device or "cpu").eval()

"""Layer groups: the one way the book splits any model into ordered parts, so that freezing to a depth, per-group
learning rates (`utils.param_groups`) and gradual unfreezing (`utils.gradual_unfreeze`) mean the same thing for a
CNN, a Hugging Face encoder, the character-level language model or a cached tail.

A model's groups run from the input to the output, and the **last group is always the head** (the new classifier).
"Unfreeze the last k" means: the head plus the last k groups before it learn, everything else is frozen; k = 0 is a
linear probe. This is fastai's *splitter* and timm's `group_matcher` idea with one rule per model family:

* a model with a ``layer_groups()`` method (the book's own classifiers, `utils.features.Tail`) says itself;
* a family registered with `register_layer_groups` (Hugging Face encoders are, below) uses its splitter;
* any other CNN (timm, torchvision, `utils.SmallCNN`) is split by its top-level children, with the stages of
  ``blocks``/``features``/``layers``/``stages`` containers as separate groups and a lone norm layer kept with the
  convolution before it. (timm's own `group_matcher(coarse=True)` groups EfficientNet almost the same way; it merges
  the last stage with the 1x1 head convolution.)
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from torch import nn

from .checks import check_int

__all__ = ["LayerGroup", "ParamCount", "layer_groups", "backbone_groups", "register_layer_groups", "classifier_name",
           "get_classifier", "count_parameters", "freeze", "unfreeze", "unfreeze_last", "frozen_bn_eval",
           "trainable_summary"]


@dataclass(frozen=True)
class LayerGroup:
    """A named, ordered run of modules that freeze and learn together (e.g. one stage of a CNN, one BERT layer)."""

    name: str
    modules: tuple[nn.Module, ...]

    def parameters(self) -> Iterator[nn.Parameter]:
        """The group's parameters, each once (a module listed twice, or shared weights, counts once)."""
        seen: set[int] = set()
        for m in self.modules:
            for p in m.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield p

    def numel(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def requires_grad_(self, flag: bool = True) -> "LayerGroup":
        for p in self.parameters():
            p.requires_grad_(flag)
        return self

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())


@dataclass(frozen=True)
class ParamCount:
    """Trainable vs frozen parameter counts."""

    trainable: int
    frozen: int

    @property
    def total(self) -> int:
        return self.trainable + self.frozen

    def __str__(self) -> str:
        return f"{self.trainable:,} trainable / {self.frozen:,} frozen ({100 * self.trainable / max(self.total, 1):.1f}% trainable)"


# --- The head --------------------------------------------------------------------------------------------------
def classifier_name(model: nn.Module) -> str:
    """Dotted name of the final classification layer (timm's `pretrained_cfg`, else the last `nn.Linear`)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if cfg.get("classifier") and isinstance(cfg["classifier"], str):
        try:
            model.get_submodule(cfg["classifier"])
            return cfg["classifier"]
        except AttributeError:
            pass
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer to treat as its classification head. "
                         "Give the model a layer_groups() method, or register a splitter (utils.register_layer_groups).")
    return linears[-1]


def get_classifier(model: nn.Module) -> nn.Module:
    """The final classification layer itself."""
    return model.get_submodule(classifier_name(model))


# --- Splitters -------------------------------------------------------------------------------------------------
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
_STAGE_CONTAINERS = ("blocks", "features", "layers", "stages")  # timm, torchvision, swin-style names
_SPLITTERS: list[tuple[Callable[[nn.Module], bool], Callable[[nn.Module], list[LayerGroup]]]] = []


def register_layer_groups(match: type | Callable[[nn.Module], bool]):
    """Decorator: `@register_layer_groups(MyModel)` makes `fn(model) -> [LayerGroup, ..., head]` the splitter of a family."""
    test = (lambda m: isinstance(m, match)) if isinstance(match, type) else match

    def wrap(fn: Callable[[nn.Module], list[LayerGroup]]):
        _SPLITTERS.append((test, fn))
        return fn

    return wrap


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def cnn_layer_groups(model: nn.Module) -> list[LayerGroup]:
    """Top-level children in order (stages of a `blocks`/`features` container separately), then the classifier."""
    head_name = classifier_name(model)
    top = head_name.split(".")[0]
    groups: list[LayerGroup] = []
    for name, module in model.named_children():
        if not _has_params(module):
            continue
        if name == top:
            if top == head_name:
                continue  # the head itself: added last
            # The head sits inside a container (e.g. torchvision's classifier = Sequential(Dropout, Linear)): split it.
            rest = [m for n, m in module.named_children() if f"{top}.{n}" != head_name and _has_params(m)]
            if rest:
                groups.append(LayerGroup(f"{name} (before head)", tuple(rest)))
            continue
        if isinstance(module, _NORMS) and groups:  # a lone norm belongs with the conv before it (stem, head conv)
            prev = groups.pop()
            groups.append(LayerGroup(f"{prev.name}+{name}", (*prev.modules, module)))
        elif isinstance(module, (nn.Sequential, nn.ModuleList)) and len(module) > 1 and name in _STAGE_CONTAINERS:
            groups.extend(LayerGroup(f"{name}.{i}", (sub,)) for i, sub in enumerate(module) if _has_params(sub))
        else:
            groups.append(LayerGroup(name, (module,)))
    groups.append(LayerGroup(head_name, (model.get_submodule(head_name),)))
    return groups


def _hf_base(model: nn.Module) -> nn.Module | None:
    """The bare encoder (with .embeddings and .encoder.layer) of a Hugging Face model, or None."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft (LoRA) wrapper
    base = getattr(inner, getattr(inner, "base_model_prefix", ""), inner)
    ok = hasattr(base, "embeddings") and hasattr(getattr(base, "encoder", None), "layer")
    return base if ok else None


@register_layer_groups(lambda m: _hf_base(m) is not None)
def hf_encoder_layer_groups(model: nn.Module) -> list[LayerGroup]:
    """BERT-style encoders: embeddings, layer.0 ... layer.N-1, then the head (pooler + classifier, what is new on top)."""
    base = _hf_base(model)
    groups = [LayerGroup("embeddings", (base.embeddings,))]
    groups += [LayerGroup(f"layer.{i}", (layer,)) for i, layer in enumerate(base.encoder.layer)]
    inside = {id(p) for g in groups for p in g.parameters()}
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = [m for n, m in inner.named_children() if m is not base and _has_params(m)]
    if getattr(base, "pooler", None) is not None:
        head.insert(0, base.pooler)
    head = [m for m in head if any(id(p) not in inside for p in m.parameters())]
    return groups + [LayerGroup("head", tuple(head))]


def layer_groups(model: nn.Module) -> list[LayerGroup]:
    """The model's groups from input to output; the last one is the head. One rule per family (see the module doc)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module (e.g. utils.create_backbone(...)), got {type(model).__name__}.")
    own = getattr(model, "layer_groups", None)
    if callable(own):
        groups = list(own())
    else:
        groups = next((fn(model) for test, fn in reversed(_SPLITTERS) if test(model)), None) or cnn_layer_groups(model)
    if not groups:
        raise ValueError(f"{type(model).__name__} splits into no groups; give it a layer_groups() method returning "
                         "[LayerGroup, ..., head].")
    return groups


def backbone_groups(model: nn.Module) -> list[LayerGroup]:
    """Every group but the head: the units that `unfreeze_last(model, k)` counts."""
    return layer_groups(model)[:-1]


# --- Freezing --------------------------------------------------------------------------------------------------
def count_parameters(model: nn.Module) -> ParamCount:
    """How many parameters will be updated, and how many are frozen."""
    t = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ParamCount(t, sum(p.numel() for p in model.parameters()) - t)


def _matching(model: nn.Module, patterns: str | Sequence[str] | None):
    import fnmatch

    pats = [patterns] if isinstance(patterns, str) else patterns
    for name, p in model.named_parameters():
        if pats is None or any(fnmatch.fnmatch(name, pat) or name.startswith(pat.rstrip("*") + ".") for pat in pats):
            yield name, p


def _set(model: nn.Module, patterns, flag: bool) -> int:
    names = [n for n, p in _matching(model, patterns) if p.requires_grad_(flag) is not None]
    if patterns is not None and not names:
        sample = ", ".join(n for n, _ in list(model.named_parameters())[:4])
        raise ValueError(f"No parameter name matches {patterns!r}. Names look like: {sample}, ... (glob patterns, e.g. 'blocks.6.*').")
    return len(names)


def freeze(model: nn.Module, patterns: str | Sequence[str] | None = None) -> int:
    """Stop gradients for every parameter (or those whose names match glob patterns); returns how many tensors."""
    return _set(model, patterns, False)


def unfreeze(model: nn.Module, patterns: str | Sequence[str] | None = None) -> int:
    """Let every parameter (or those matching the patterns) learn again; returns how many tensors."""
    return _set(model, patterns, True)


def unfreeze_last(model: nn.Module, k: int) -> list[str]:
    """Train the head and the last `k` backbone groups, freeze the rest (k = 0: linear probe; all: full fine-tune).

    Parameters held directly by the model and by no group (rare, e.g. a class token at the top level) learn only when
    every group does; parts a model keeps but never uses (e.g. a language model's next-word layer) stay frozen.
    Returns the names of the groups that learn.
    """
    groups = layer_groups(model)
    n = len(groups) - 1
    check_int(k, "k", 0, n, hint=f"this model has {n} backbone groups: {', '.join(g.name for g in groups[:-1])}")
    freeze(model)
    opened = groups[n - k:]
    for g in opened:
        g.requires_grad_(True)
    if k == n:
        for p in model._parameters.values():
            if p is not None:
                p.requires_grad_(True)
    return [g.name for g in opened]


def frozen_bn_eval(model: nn.Module) -> int:
    """Put BatchNorm layers whose weights are frozen into eval mode, so training does not drift their statistics."""
    n = 0
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters(recurse=False)):
            m.eval()
            n += 1
    return n


def trainable_summary(model: nn.Module) -> list[tuple[str, int, bool]]:
    """(group, parameter count, trainable?) per layer group, head last, for printing as a table."""
    return [(g.name, g.numel(), g.trainable) for g in layer_groups(model)]

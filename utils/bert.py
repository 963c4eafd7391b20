"""Transfer with BERT-style encoders: pooled sentence vectors (cached on disk), tokenising loaders, layer-wise LR decay,
warm-up schedules, LoRA adapters, and saving/predicting on raw strings.

Truncation policy: training loaders and `encode_texts` truncate silently to `max_length` (measure coverage first with
`token_lengths`); `predict` truncates too but *warns*, because a user's review that loses its last clause ("... but
the ending ruins it") can flip its label.
"""
from __future__ import annotations

import copy
import inspect
import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from .progress import progress_bar

from . import cache
from .checks import MAX_CHARS, check_choice, check_int, check_names, check_number, check_texts
from .groups import LayerGroup
from .text import masked_mean
from .train import forward, to_device

__all__ = ["POOLINGS", "token_lengths", "pool_hidden", "encode_texts", "cached_encode", "TokenizeCollate", "text_loader",
           "MeanPoolClassifier", "run_key", "add_lora", "save_classifier", "load_classifier", "predict_texts"]

POOLINGS = ("cls", "mean")
HEAD_FILE = "mean_pool_head.safetensors"  # save_classifier's file for a MeanPoolClassifier's linear head


def _check_max_length(tokenizer, max_length: int) -> int:
    if not callable(tokenizer):
        raise TypeError(f"tokenizer must be a Hugging Face tokenizer (e.g. from utils.load_minilm()), got "
                        f"{type(tokenizer).__name__}.")
    limit = min(getattr(tokenizer, "model_max_length", 512), 4096)
    return check_int(max_length, "max_length", 3, limit, hint="(room for [CLS], a token and [SEP])")


def _check_pooling(pooling: str | Sequence[str]) -> tuple[str, ...]:
    if not isinstance(pooling, (str, list, tuple)):
        raise TypeError(f"pooling must be one of {POOLINGS} or a tuple of them, got {pooling!r}.")
    wanted = (pooling,) if isinstance(pooling, str) else tuple(pooling)
    bad = [p for p in wanted if p not in POOLINGS]
    if bad or not wanted:
        raise ValueError(f"Unknown pooling {bad or pooling!r}; choose from {POOLINGS} (or a tuple of them).")
    return wanted


def token_lengths(tokenizer, texts: Sequence[str], max_chars: int = MAX_CHARS) -> np.ndarray:
    """Length of each text in tokens, special tokens included: the numbers to choose `max_length` from."""
    ids = tokenizer(check_texts(texts, max_chars=max_chars), truncation=False, verbose=False)["input_ids"]
    return np.array([len(x) for x in ids])


def pool_hidden(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One vector per sequence: the [CLS] position, or the mean over real (non-padding) tokens only."""
    check_choice(pooling, "pooling", POOLINGS)
    if not torch.is_tensor(hidden) or hidden.ndim != 3:
        raise ValueError(f"hidden must be (batch, tokens, dim) hidden states, got "
                         f"{tuple(hidden.shape) if torch.is_tensor(hidden) else type(hidden).__name__}.")
    if not torch.is_tensor(mask) or tuple(mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(f"mask must be the (batch, tokens) attention mask matching hidden {tuple(hidden.shape[:2])}, got "
                         f"{tuple(mask.shape) if torch.is_tensor(mask) else type(mask).__name__}.")
    return hidden[:, 0] if pooling == "cls" else masked_mean(hidden, mask)


class MeanPoolClassifier(nn.Module):
    """Encoder → mean over real tokens → dropout → linear: the pooling a sentence-embedding checkpoint was trained with.

    `AutoModelForSequenceClassification` classifies from `[CLS]` (through BERT's pooler); for MiniLM, trained as a
    mean-pooled sentence embedder, the mean is the better-prepared input. Takes and returns what HF models do.
    """

    def __init__(self, encoder: nn.Module, num_labels: int = 2, dropout: float = 0.1):
        super().__init__()
        num_labels = check_int(num_labels, "num_labels", 2)
        dropout = check_number(dropout, "dropout", 0, 1, hi_open=True)
        if not hasattr(encoder, "config") or not hasattr(encoder.config, "hidden_size"):
            raise TypeError(f"encoder must be a Hugging Face encoder (e.g. utils.load_minilm()[1]), got {type(encoder).__name__}.")
        self.encoder, self.config = encoder, encoder.config
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler.requires_grad_(False)  # BERT's [CLS] pooler: computed, but mean pooling never reads it
        self.config.num_labels = num_labels  # read by save_classifier / predict for the label names
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, input_ids=None, attention_mask=None, **kwargs) -> torch.Tensor:
        kwargs = {k: v for k, v in kwargs.items() if k in ("token_type_ids", "inputs_embeds")}  # peft passes extras
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        return self.classifier(self.dropout(pool_hidden(hidden, attention_mask, "mean")))

    def layer_groups(self) -> list[LayerGroup]:
        """embeddings, layer.0 ... layer.N-1, head: the groups `utils.param_groups` decays over (LLRD)."""
        enc = self.encoder
        return ([LayerGroup("embeddings", (enc.embeddings,))]
                + [LayerGroup(f"layer.{i}", (m,)) for i, m in enumerate(enc.encoder.layer)]
                + [LayerGroup("head", (self.classifier,))])


def _last_hidden(model: nn.Module, batch: dict) -> torch.Tensor:
    encoder = getattr(model, "base_model", model)  # BertForSequenceClassification -> its BertModel
    out = encoder(**batch)
    if not hasattr(out, "last_hidden_state"):
        raise TypeError(f"{type(model).__name__} does not return hidden states; pass an encoder (utils.load_minilm()) "
                        f"or an AutoModelForSequenceClassification.")
    return out.last_hidden_state


@torch.inference_mode()
def encode_texts(tokenizer, model: nn.Module, texts: Sequence[str], max_length: int = 64, pooling: str | Sequence[str] = "cls",
                 batch_size: int = 64, padding: str = "longest", sort: bool = True, progress: bool = True):
    """Frozen sentence vectors (N, hidden) on the CPU; a tuple of poolings gives a dict from one forward pass.

    `sort=True` batches texts of similar length together, so dynamic padding (`padding="longest"`) wastes little.
    """
    texts, poolings = check_texts(texts), _check_pooling(pooling)
    _check_max_length(tokenizer, max_length)
    batch_size = check_int(batch_size, "batch_size", 1)
    check_choice(padding, "padding", ("longest", "max_length"))
    device = next(model.parameters()).device
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i])) if sort else list(range(len(texts)))
    chunks: dict[str, list[torch.Tensor]] = {p: [] for p in poolings}
    for s in progress_bar(range(0, len(texts), batch_size), desc="encode", disable=not progress, leave=False):
        enc = tokenizer([texts[i] for i in order[s:s + batch_size]], truncation=True, max_length=max_length,
                        padding=padding, return_tensors="pt")
        batch = to_device(dict(enc), device)
        hidden = _last_hidden(model, batch).float()
        for p in poolings:
            chunks[p].append(pool_hidden(hidden, batch["attention_mask"], p).cpu())
    inverse = torch.as_tensor(np.argsort(order))
    out = {p: torch.cat(c)[inverse] for p, c in chunks.items()}
    return out[pooling] if isinstance(pooling, str) else out


def _cache_key(tokenizer, model: nn.Module, texts: list[str], max_length: int) -> str:
    return cache.hash_json({"model": cache.fingerprint(model), "tokenizer": [type(tokenizer).__name__, len(tokenizer)],
                            "texts": cache.hash_json(texts), "n": len(texts), "max_length": max_length})


def cached_encode(tokenizer, model: nn.Module, texts: Sequence[str], max_length: int = 64,
                  pooling: str | Sequence[str] = "cls", batch_size: int = 64, folder: str | Path | None = None,
                  progress: bool = True):
    """`encode_texts`, but each (model weights, texts, max_length, pooling) result is computed once and kept on disk."""
    texts, poolings = check_texts(texts), _check_pooling(pooling)
    batch_size = check_int(batch_size, "batch_size", 1)
    folder = Path(folder).expanduser() if folder else cache.cache_dir("embeddings")
    key = _cache_key(tokenizer, model, texts, _check_max_length(tokenizer, max_length))
    paths = {p: folder / f"{key}-{p}.safetensors" for p in poolings}
    missing = tuple(p for p, path in paths.items() if not path.exists())
    if missing:
        fresh = encode_texts(tokenizer, model, texts, max_length, missing, batch_size, progress=progress)
        for p in missing:
            cache.save_tensors({"embeddings": fresh[p]}, paths[p])
    out = {p: cache.load_tensors(path)["embeddings"] for p, path in paths.items()}
    return out[pooling] if isinstance(pooling, str) else out


class TokenizeCollate:
    """(text, label) pairs -> (tokenizer dict, label tensor): truncate to max_length, pad to the batch's longest text."""

    def __init__(self, tokenizer, max_length: int = 64, classes: Sequence[str] | None = None):
        self.tokenizer, self.max_length = tokenizer, _check_max_length(tokenizer, max_length)
        self.classes = check_names(classes, "classes") if classes is not None else None

    def label_id(self, y) -> int:
        """Integer class of a label given as an int or as a class name ("fresh")."""
        if isinstance(y, str):
            if self.classes is None or y not in self.classes:
                raise ValueError(f"Unknown label name {y!r}; known names: {self.classes or 'none (pass classes=[...])'}.")
            return self.classes.index(y)
        return int(y)

    def __call__(self, batch):
        texts, labels = zip(*batch)
        enc = self.tokenizer(check_texts(texts), truncation=True, max_length=self.max_length, padding="longest",
                             return_tensors="pt")
        return dict(enc), torch.as_tensor([self.label_id(y) for y in labels], dtype=torch.long)


def text_loader(dataset, tokenizer, max_length: int = 64, batch_size: int = 16, shuffle: bool = False, seed: int = 0,
                classes: Sequence[str] | None = None, group_by_length: bool = False):
    """A DataLoader of raw (text, label) pairs that tokenises on the fly, with dynamic padding; works with `utils.fit`.

    `group_by_length=True` (with `shuffle=True`) batches texts of similar length together
    (`utils.loaders.LengthGroupedSampler`), like the `Trainer`'s option of that name: less padding, every text once
    per epoch, a less random mix of lengths in a batch.
    """
    from .loaders import LengthGroupedSampler, make_loader

    sampler = LengthGroupedSampler.for_texts(
        dataset, lambda texts: np.minimum(token_lengths(tokenizer, texts), _check_max_length(tokenizer, max_length)),
        batch_size, shuffle, group_by_length, seed)
    classes = classes if classes is not None else getattr(dataset, "classes", None)
    return make_loader(dataset, batch_size, shuffle=shuffle and sampler is None, seed=seed, num_workers=0, sampler=sampler,
                       collate_fn=TokenizeCollate(tokenizer, max_length, classes))


def run_key(encoder: nn.Module, train, test, seed: int, **recipe) -> dict:
    """What identifies one fine-tuning run, for `cache.save_result` / `cache.load_result`: the encoder's weights, the
    exact training and test reviews with their labels, the seed, torch's and the book's versions, and every recipe
    setting passed as keywords."""
    def texts(d):
        return cache.hash_json([list(d.texts), np.asarray(d.labels).tolist()])

    if not hasattr(train, "texts") or not hasattr(test, "texts"):
        raise TypeError("train and test must be text datasets with .texts and .labels (e.g. utils.rotten_tomatoes(...)).")
    from . import __version__

    return {"encoder": cache.fingerprint(encoder), "train": texts(train), "test": texts(test), "seed": int(seed),
            "torch": torch.__version__, "utils": __version__, **recipe}  # new code versions: train again


def add_lora(model: nn.Module, r: int = 8, alpha: int = 16, target_modules: Sequence[str] = ("query", "value"),
             dropout: float = 0.1):
    """Freeze the model and add rank-r LoRA adapters (peft) to the named linear layers; the new head stays trainable.

    Modifies `model` in place (peft injects the adapters) and returns the wrapping `PeftModel`.
    """
    from .checks import check_model

    check_model(model)
    r = check_int(r, "r", 1, hint="(the LoRA rank, e.g. 8)")
    alpha = check_number(alpha, "alpha", 0, None, lo_open=True, hint="(LoRA scaling, often 2 * r)")
    dropout = check_number(dropout, "dropout", 0, 1, hi_open=True)
    target_modules = check_names(target_modules, "target_modules")
    linear = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    missing = sorted(set(target_modules) - linear)
    if missing:
        raise ValueError(f"target_modules: no nn.Linear named {missing} in {type(model).__name__}; its linear layers are "
                         f"called {sorted(linear)}.")
    from peft import LoraConfig, TaskType, get_peft_model  # after the checks: a bad call fails without importing peft

    kind = ({"modules_to_save": ["classifier"]} if isinstance(model, MeanPoolClassifier)  # not an HF model class
            else {"task_type": TaskType.SEQ_CLS})
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules), **kind)
    return get_peft_model(model, config)


def _label_names(model: nn.Module, labels: Sequence[str] | None) -> list[str]:
    if not hasattr(getattr(model, "config", None), "num_labels"):
        raise TypeError(f"model must be a text classifier with a Hugging Face config (e.g. utils.load_minilm(num_labels=2)"
                        f"[1]), got {type(model).__name__}.")
    n = model.config.num_labels
    if labels is None:
        return [model.config.id2label[i] for i in range(n)]
    return check_names(labels, "labels", n)


def save_classifier(model: nn.Module, tokenizer, folder: str | Path, labels: Sequence[str] | None = None) -> Path:
    """Weights (safetensors), config with label names, and tokenizer in one folder; LoRA is merged first so it loads anywhere."""
    if hasattr(model, "merge_and_unload"):  # a peft model: save a plain model with the adapters folded into the weights
        model = copy.deepcopy(model).merge_and_unload()
    names = _label_names(model, labels)
    model.config.id2label, model.config.label2id = dict(enumerate(names)), {n: i for i, n in enumerate(names)}
    folder = Path(folder).expanduser()
    tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    hf_model = model.encoder if isinstance(model, MeanPoolClassifier) else model
    safe = {"safe_serialization": True} if "safe_serialization" in inspect.signature(hf_model.save_pretrained).parameters else {}
    hf_model.save_pretrained(tmp, **safe)
    if isinstance(model, MeanPoolClassifier):  # encoder as a plain HF model, the mean-pooling head beside it
        cache.save_tensors(dict(model.classifier.state_dict()), tmp / HEAD_FILE)
    tokenizer.save_pretrained(tmp)
    if not any(tmp.glob("*.safetensors")):
        raise RuntimeError(f"save_pretrained wrote no .safetensors file in {tmp}; upgrade transformers.")
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)  # the previous save stays complete until the new one is in place
    shutil.rmtree(old, ignore_errors=True)
    return folder


def load_classifier(folder: str | Path, device: torch.device | str | None = None):
    """(tokenizer, model) saved by `save_classifier`, in eval mode, loaded offline from the folder."""
    if not isinstance(folder, (str, Path)):
        raise TypeError(f"folder must be a path (str or Path) written by save_classifier, got {type(folder).__name__}.")
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"No saved classifier at {folder}. Save one first with save_classifier(model, tokenizer, {str(folder)!r}).")
    if not (folder / "config.json").exists() or not any(folder.glob("*.safetensors")):
        raise FileNotFoundError(f"{folder} has no config.json or *.safetensors weights; it is not a save_classifier() folder.")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if (folder / HEAD_FILE).exists():
        from safetensors.torch import load_file
        from transformers import AutoModel

        encoder = AutoModel.from_pretrained(str(folder), local_files_only=True)
        model = MeanPoolClassifier(encoder, encoder.config.num_labels)
        model.classifier.load_state_dict(load_file(str(folder / HEAD_FILE)))
    else:
        model = AutoModelForSequenceClassification.from_pretrained(str(folder), local_files_only=True)
    return tokenizer, model.to(device or "cpu").eval()


@torch.inference_mode()
def predict_texts(texts: Sequence[str], model: nn.Module, tokenizer, labels: Sequence[str] | None = None,
                  max_length: int = 128, batch_size: int = 32, max_chars: int = MAX_CHARS) -> list[tuple[str, float]]:
    """(label, probability) of the most likely class for each raw string; warns if any text is truncated to max_length.

    Text over `max_chars` characters is refused (ValueError): it is usually a whole file or a concatenation by mistake.
    """
    max_chars = check_int(max_chars, "max_chars", 1)
    texts, names = check_texts(texts, max_chars=max_chars), _label_names(model, labels)
    _check_max_length(tokenizer, max_length)
    batch_size = check_int(batch_size, "batch_size", 1)
    long = int((token_lengths(tokenizer, texts, max_chars) > max_length).sum())
    if long:
        warnings.warn(f"{long} of {len(texts)} texts are longer than max_length={max_length} tokens and were truncated; "
                      f"raise max_length (limit {tokenizer.model_max_length}) if their endings matter.", stacklevel=2)
    device = next(model.parameters()).device
    model.eval()
    out: list[tuple[str, float]] = []
    for s in range(0, len(texts), batch_size):
        enc = tokenizer(texts[s:s + batch_size], truncation=True, max_length=max_length, padding="longest", return_tensors="pt")
        prob, idx = forward(model, to_device(dict(enc), device)).float().softmax(-1).max(-1)
        out += [(names[i], float(p)) for i, p in zip(idx.tolist(), prob.tolist())]
    return out


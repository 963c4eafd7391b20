"""A pretrained character-level LSTM language model (textgenrnn's weights) ported to PyTorch, for ULMFiT-style transfer.

How the LM must be fed. textgenrnn trained it on windows of exactly 40 tokens (`<s>` + text, left-padded with id 0),
each read from zero state. Two ways of reading a text keep it in that regime:

* `text_to_ids(lm, texts)`: the last 40 tokens, left-padded (what `next_char_probs` and `generate` use);
* `encode(lm, texts)` + `CharLM.run`: one pass over the whole text, starting from `CharLM.start_state()`, the state
  the LM is in after 39 padding tokens, i.e. exactly where textgenrnn's first window of a text reads `<s>`.
  Padding never enters the LSTMs (packed sequences), so texts of any length are read without padding artefacts.
  A pretrained LM has never run for more than 40 steps, so this pass is out of its regime after 40 characters
  until stage 2 (`adapt`) teaches it to read whole reviews.

A longer left-padded window (`text_to_ids(..., context=100)`) is *not* a neutral choice: the LSTMs then run 100 steps
from zero state, and the LM predicts worse than a unigram model (`bits_per_char(..., mode="window", context=100)`).

ULMFiT's three stages with these pieces: stage 1 is `load_pretrained_charlm()`; stage 2 is `adapt(lm, texts)`
(next-character training on unlabelled target text with `utils.fit`, cached on disk); stage 3 is
`CharLMClassifier(lm)` (its head can start as a converged probe, `load_probe`) trained with `utils.gradual_unfreeze`.
"""
from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .assets import load_charlstm_weights
from .checks import check_int, check_lr, check_number, check_seed, check_texts
from .groups import LayerGroup
from .text import masked_max, masked_mean

__all__ = ["CONTEXT", "CharLM", "cudnn_to_torch_lstm", "load_pretrained_charlm", "text_to_ids", "next_char_probs",
           "generate", "encode", "NextCharObjective", "lm_batches", "bits_per_char", "unlabelled_texts", "adapt",
           "pooled_features", "text_loader", "CharLMClassifier"]

CONTEXT = 40  # textgenrnn trained on windows of exactly 40 tokens, left-padded with 0, from zero state
HIDDEN = 128


def cudnn_to_torch_lstm(kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> dict[str, torch.Tensor]:
    """Keras-saved CuDNN LSTM arrays → `nn.LSTM` tensors: each gate's input block is *reshaped*, not transposed."""
    h = recurrent.shape[0]
    if kernel.shape[1] != 4 * h or recurrent.shape != (h, 4 * h) or bias.shape != (8 * h,):
        raise ValueError(f"Not a CuDNN LSTM layout: kernel {kernel.shape}, recurrent {recurrent.shape}, bias {bias.shape}.")
    gates = range(4)  # i, f, g, o: the same order as nn.LSTM
    w_ih = np.concatenate([np.ascontiguousarray(kernel[:, g * h:(g + 1) * h]).reshape(h, -1) for g in gates])
    w_hh = np.concatenate([np.ascontiguousarray(recurrent[:, g * h:(g + 1) * h]) for g in gates])
    return {"weight_ih_l0": torch.from_numpy(w_ih), "weight_hh_l0": torch.from_numpy(w_hh),
            "bias_ih_l0": torch.from_numpy(bias[:4 * h].copy()), "bias_hh_l0": torch.from_numpy(bias[4 * h:].copy())}


class CharLM(nn.Module):
    """Embedding → LSTM → LSTM; [emb, lstm1, lstm2] attention-pooled over time → next-character logits."""

    def __init__(self, vocab: dict[str, int], emb_dim: int = 100, hidden: int = HIDDEN):
        super().__init__()
        self.vocab = dict(vocab)
        self.itos = {i: c for c, i in self.vocab.items()}
        n = len(self.vocab) + 1  # index 0 is padding / unknown
        self.embedding = nn.Embedding(n, emb_dim)
        self.lstm1 = nn.LSTM(emb_dim, hidden, batch_first=True)
        self.lstm2 = nn.LSTM(hidden, hidden, batch_first=True)
        self.attention = nn.Linear(emb_dim + 2 * hidden, 1, bias=False)
        self.out = nn.Linear(emb_dim + 2 * hidden, n)

    def states(self, ids: torch.Tensor) -> torch.Tensor:
        """Per-position [embedding, lstm1, lstm2] states (batch, time, 356)."""
        e = self.embedding(ids)
        h1, _ = self.lstm1(e)
        h2, _ = self.lstm2(h1)
        return torch.cat([e, h1, h2], dim=-1)

    def summary(self, ids: torch.Tensor) -> torch.Tensor:
        """The attention-pooled 356-d summary the LM uses to predict the next character (ids in, vector out)."""
        seq = self.states(ids)
        weights = torch.softmax(self.attention(seq).squeeze(-1), dim=1)  # no mask: textgenrnn attends to padding too
        return (seq * weights.unsqueeze(-1)).sum(dim=1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.summary(ids))

    def start_state(self) -> tuple[torch.Tensor, tuple, tuple]:
        """The states after 39 padding tokens from zero state, where textgenrnn reads a text's `<s>`.

        Returns the 39 pad positions' [emb, lstm1, lstm2] states (1, 39, 356) and the (h, c) of each LSTM.
        """
        pad = torch.zeros(1, CONTEXT - 1, dtype=torch.long, device=self.embedding.weight.device)
        e = self.embedding(pad)
        h1, s1 = self.lstm1(e)
        h2, s2 = self.lstm2(h1)
        return torch.cat([e, h1, h2], dim=-1), s1, s2

    def run(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[emb, lstm1, lstm2] states (batch, time, 356) of one pass over right-padded texts (`encode`), from the
        start state; padding never enters the LSTMs (positions past a text's length are zeros)."""
        batch, time = ids.shape
        _, (h1, c1), (h2, c2) = self.start_state()
        s1 = (h1.expand(-1, batch, -1).contiguous(), c1.expand(-1, batch, -1).contiguous())
        s2 = (h2.expand(-1, batch, -1).contiguous(), c2.expand(-1, batch, -1).contiguous())
        e = self.embedding(ids)
        packed = pack_padded_sequence(e, lengths.cpu(), batch_first=True, enforce_sorted=False)
        p1, _ = self.lstm1(packed, s1)
        p2, _ = self.lstm2(p1, s2)
        h1 = pad_packed_sequence(p1, batch_first=True, total_length=time)[0]
        h2 = pad_packed_sequence(p2, batch_first=True, total_length=time)[0]
        return torch.cat([e, h1, h2], dim=-1)

    def next_char_logits(self, seq: torch.Tensor) -> torch.Tensor:
        """Next-character logits at every position of `run`'s states: the LM's own head, attention over that
        position's last 40 states (the start state's pad positions fill windows that reach before the text)."""
        batch, time, _ = seq.shape
        prefix = self.start_state()[0]
        full = torch.cat([prefix.expand(batch, -1, -1), seq], dim=1)  # (batch, 39 + time, 356)
        scores = self.attention(full).squeeze(-1).unfold(1, CONTEXT, 1)  # (batch, time, 40): window ending at t
        weights = torch.softmax(scores, dim=-1)
        pooled = sum(weights[..., k:k + 1] * full[:, k:k + time] for k in range(CONTEXT))
        return self.out(pooled)


def load_pretrained_charlm() -> CharLM:
    """The bundled textgenrnn language model with its real weights, in eval mode."""
    w = load_charlstm_weights()
    a = w.arrays
    model = CharLM(w.vocab)
    state = {"embedding.weight": torch.from_numpy(a["embedding/embedding/embeddings:0"].copy()),
             "attention.weight": torch.from_numpy(a["attention/attention/attention_W:0"].T.copy()),
             "out.weight": torch.from_numpy(a["output/output/kernel:0"].T.copy()),
             "out.bias": torch.from_numpy(a["output/output/bias:0"].copy())}
    for layer, name in (("lstm1", "rnn_1"), ("lstm2", "rnn_2")):
        parts = cudnn_to_torch_lstm(*(a[f"{name}/{name}/{p}:0"] for p in ("kernel", "recurrent_kernel", "bias")))
        state.update({f"{layer}.{k}": v for k, v in parts.items()})
    model.load_state_dict(state, strict=True)
    return model.eval()


def text_to_ids(model: CharLM, texts: str | list[str], context: int = CONTEXT) -> torch.Tensor:
    """Characters → ids as textgenrnn feeds them: `<s>` then the text, the last `context` kept, left-padded with 0.

    Only context=40 is the LM's training regime; other values exist to measure what a mismatch costs.
    """
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, (list, tuple)) or not texts or not all(isinstance(t, str) for t in texts):
        raise TypeError("text_to_ids() takes a string or a non-empty list of strings.")
    context = check_int(context, "context", 1, hint=f"(tokens per window; the LM was trained on {CONTEXT})")
    start = model.vocab["<s>"]
    rows = [([0] * context + [start] + [model.vocab.get(c, 0) for c in t])[-context:] for t in texts]
    return torch.tensor(rows, dtype=torch.long)


def _ids(model: CharLM, text: str) -> list[int]:
    """`<s>` then the characters (whitespace runs, newlines included, become one space; unknown characters → 0)."""
    return [model.vocab["<s>"]] + [model.vocab.get(c, 0) for c in " ".join(text.split())]


def encode(model: CharLM, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole texts for one pass from the start state (`CharLM.run`): `<s>` + characters, right-padded, and lengths."""
    texts = check_texts(texts)
    seqs = [_ids(model, t) for t in texts]
    lengths = torch.tensor([len(q) for q in seqs])
    ids = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)
    for i, q in enumerate(seqs):
        ids[i, :len(q)] = torch.tensor(q)
    return ids, lengths


class NextCharObjective(nn.Module):
    """The LM as `utils.train_step` / `utils.fit` / `utils.evaluate` expect a classifier: input `encode`'s (ids,
    lengths), output next-character logits at every real position, flattened to match `lm_batches`' targets (each
    character predicts the next one, the last predicts `<s>`, textgenrnn's end-of-text mark)."""

    def __init__(self, lm: CharLM):
        super().__init__()
        self.lm = lm

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        ids, lengths = batch
        logits = self.lm.next_char_logits(self.lm.run(ids, lengths))
        real = torch.arange(ids.shape[1], device=ids.device)[None] < lengths.to(ids.device)[:, None]
        return logits[real]


def lm_batches(model: CharLM, texts: Sequence[str], texts_per_batch: int = 10, shuffle: bool = True,
               seed: int = 0) -> list[tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """((ids, lengths), next-character targets) batches for `NextCharObjective`, texts of similar length together
    (little padding); `shuffle` draws the batch order with `seed`. A list, so `utils.fit` can take it as a loader."""
    texts = check_texts(texts)
    texts_per_batch = check_int(texts_per_batch, "texts_per_batch", 1)
    seed = check_seed(seed)
    order = np.argsort([len(t) for t in texts], kind="stable")
    groups = [order[i:i + texts_per_batch] for i in range(0, len(order), texts_per_batch)]
    if shuffle:
        groups = [groups[i] for i in np.random.default_rng(seed).permutation(len(groups))]
    end = model.vocab["<s>"]
    out = []
    for g in groups:
        ids, lengths = encode(model, [texts[i] for i in g])
        targets = torch.cat([torch.cat([ids[i, 1:n], torch.tensor([end])]) for i, n in enumerate(lengths.tolist())])
        out.append(((ids, lengths), targets))
    return out


@torch.no_grad()
def bits_per_char(model: CharLM, texts: Sequence[str], mode: str = "pass", context: int = CONTEXT,
                  batch_size: int = 1024) -> float:
    """Held-out cross-entropy of the next character in bits (lower is better; a unigram model of English is ~4.5).

    mode="pass": one pass over each whole text from the start state (how the classifier reads; `lm_batches`).
    mode="window": each character from its own left-padded window of the last `context` tokens, read from zero
    state (textgenrnn's training regime when context=40). Every character and the closing `<s>` count once.
    """
    from .checks import check_choice
    from .device import model_device
    from .train import evaluate

    texts = check_texts(texts)
    check_choice(mode, "mode", ("pass", "window"))
    context = check_int(context, "context", 1)
    batch_size = check_int(batch_size, "batch_size", 1)
    was_training = model.training
    model.eval()
    try:
        if mode == "pass":
            return evaluate(NextCharObjective(model), lm_batches(model, texts, shuffle=False))["loss"] / math.log(2)
        device = model_device(model)
        end, total, count, rows, targets = model.vocab["<s>"], 0.0, 0, [], []
        for t in texts:
            seq = _ids(model, t)
            full = seq + [end]
            for j in range(1, len(full)):
                rows.append(([0] * context + seq[:j])[-context:])
                targets.append(full[j])
        for i in range(0, len(rows), batch_size):
            x = torch.tensor(rows[i:i + batch_size], device=device)
            y = torch.tensor(targets[i:i + batch_size], device=device)
            total += float(nn.functional.cross_entropy(model(x).float(), y, reduction="sum"))
            count += len(y)
        return total / count / math.log(2)
    finally:
        model.train(was_training)


def _chunks(text: str, size: int) -> list[str]:
    """A long text cut at spaces into pieces of at most `size` characters (whitespace runs become one space)."""
    text, out = " ".join(text.split()), []
    while len(text) > size:
        cut = text.rfind(" ", 0, size)
        cut = cut if cut > size // 2 else size
        out.append(text[:cut])
        text = text[cut:].lstrip()
    return out + [text] if text else out


def unlabelled_texts(chars: int = 300_000, plot_share: float = 1 / 3, seed: int = 0, piece: int = 256) -> list[str]:
    """Stage 2's unlabelled target-domain text, drawn at random to a budget of `chars` characters: training-split
    reviews (labels unused) and plot descriptions (cut into pieces of at most `piece` characters) of movies that are
    in no validation or test review, so nothing about a held-out movie leaks into the LM."""
    from .data import _rotten_tomatoes_file, _rotten_tomatoes_frame, rotten_tomatoes, split_indices

    chars = check_int(chars, "chars", 1, hint="(characters of unlabelled text)")
    plot_share = check_number(plot_share, "plot_share", 0, 1, hint="(the fraction of the budget taken from plots)")
    seed, piece = check_seed(seed), check_int(piece, "piece", 40)
    df = _rotten_tomatoes_frame()
    idx = split_indices(df["label"].to_numpy(), groups=df["movie_name"].tolist())
    held_out = set(df["movie_name"].iloc[idx["val"]]) | set(df["movie_name"].iloc[idx["test"]])
    raw = _rotten_tomatoes_file()
    plots = raw[(raw["category"] == "plot") & ~raw["movie_name"].isin(held_out)]["text"].dropna().astype(str)
    pools = ([p for t in sorted(set(plots)) for p in _chunks(t, piece)], rotten_tomatoes("train").texts)
    rng, out = np.random.default_rng(seed), []
    for pool, budget in zip(pools, (chars * plot_share, chars * (1 - plot_share))):
        got = 0
        for i in rng.permutation(len(pool)):
            if got >= budget:
                break
            out.append(pool[i])
            got += len(pool[i])
    return out


def _texts_hash(texts: Sequence[str]) -> str:
    import hashlib

    h = hashlib.sha1()
    for t in texts:
        h.update(t.encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


def adapt(model: CharLM, texts: Sequence[str], epochs: int = 1, lr: float = 2e-3, texts_per_batch: int = 10,
          warmup: float = 0.1, seed: int = 0, val_texts: Sequence[str] | None = None, progress: bool = True,
          use_cache: bool = True):
    """ULMFiT's stage 2: fine-tune the whole LM on unlabelled target-domain text (next character, one pass per text).

    `utils.fit` on `NextCharObjective` with AdamW (no weight decay), a linear warm-up over `warmup` of the steps then
    linear decay to 0 (ULMFiT's slanted triangular rate) and gradient clipping at 1. Returns a new, adapted LM (eval
    mode; `model` is not changed) and the `History` (loss in nats per character; `val_loss / ln 2` is bits per
    character on `val_texts`). The result is cached in `utils.cache.cache_dir("charlm")` under a hash of the base
    weights, the texts and the settings, so a rerun on the same machine loads it instead of training.
    """
    from . import cache
    from .device import get_device, seed_everything
    from .train import History, fit

    if not isinstance(model, CharLM):
        raise TypeError(f"model must be a utils.charlm.CharLM (load_pretrained_charlm()), got {type(model).__name__}.")
    texts = check_texts(texts)
    val_texts = check_texts(val_texts, "val_texts") if val_texts is not None else None
    epochs, lr = check_int(epochs, "epochs", 1), check_lr(lr)
    texts_per_batch = check_int(texts_per_batch, "texts_per_batch", 1)
    warmup = check_number(warmup, "warmup", 0, 1, hi_open=True, hint="(a fraction of the training steps, e.g. 0.1)")
    seed = check_seed(seed)
    settings = {"epochs": epochs, "lr": lr, "texts_per_batch": texts_per_batch, "warmup": warmup, "seed": seed,
                "optimizer": "AdamW wd 0, linear warm-up/decay, clip 1", "v": 1}
    key = cache.hash_json({"base": cache.fingerprint(model), "texts": _texts_hash(texts),
                           "val": _texts_hash(val_texts) if val_texts else None, **settings})
    path = cache.cache_dir("charlm") / f"adapted_{key}.safetensors"
    adapted = copy.deepcopy(model).cpu()
    if use_cache and path.exists():
        adapted.load_state_dict(cache.load_tensors(path))
        meta = json.loads(_read_meta(path))
        return adapted.eval(), History(meta["label"], meta["rows"])
    adapted.requires_grad_(True).train()
    seed_everything(seed)
    train = lm_batches(adapted, texts, texts_per_batch, shuffle=True, seed=seed)
    val = lm_batches(adapted, val_texts, texts_per_batch, shuffle=False) if val_texts else None
    optimizer = torch.optim.AdamW(adapted.parameters(), lr=lr, weight_decay=0.0)
    history = fit(NextCharObjective(adapted), train, val, epochs=epochs, optimizer=optimizer, schedule="linear",
                  warmup=warmup, grad_clip=1.0, device=get_device(), label="stage 2: LM fine-tuning", progress=progress)
    adapted.cpu().eval()
    if use_cache:
        cache.save_tensors(adapted.state_dict(), path,
                           metadata={"history": json.dumps({"label": history.label, "rows": history.rows})})
    return adapted, history


def _read_meta(path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata()["history"]


@torch.no_grad()
def pooled_features(model: CharLM, texts: Sequence[str], batch_size: int = 128, use_cache: bool = True) -> torch.Tensor:
    """What `CharLMClassifier`'s head reads, from a frozen LM: [mean, max] of lstm1 and of lstm2 over each text's real
    positions in one pass from the start state, (N, 512). Feed them to `utils.linear_probe`. Cached on disk under a
    hash of the LM's weights and the texts (`utils.cache.cache_dir("charlm")`), so a rerun reads them back."""
    from . import cache
    from .device import model_device

    texts = check_texts(texts)
    batch_size = check_int(batch_size, "batch_size", 1)
    path = None
    if use_cache:
        key = cache.hash_json({"lm": cache.fingerprint(model), "texts": _texts_hash(texts), "v": 1})
        path = cache.cache_dir("charlm") / f"pooled_{key}.safetensors"
        if path.exists():
            return cache.load_tensors(path)["features"]
    was_training = model.training
    model.eval()
    device = model_device(model)
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = None
    try:
        for i in range(0, len(texts), batch_size):
            sel = order[i:i + batch_size]
            ids, lengths = encode(model, [texts[j] for j in sel])
            f = _pool(model, ids.to(device), lengths).cpu()
            out = out if out is not None else torch.zeros(len(texts), f.shape[1])
            out[torch.from_numpy(sel)] = f
    finally:
        model.train(was_training)
    if path is not None:
        cache.save_tensors({"features": out.contiguous()}, path)
    return out


def _pool(lm: CharLM, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    h = lm.run(ids, lengths)[..., lm.embedding.embedding_dim:]  # lstm1 and lstm2 states
    h1, h2 = h.split([lm.lstm1.hidden_size, lm.lstm2.hidden_size], dim=-1)
    mask = torch.arange(ids.shape[1], device=ids.device)[None] < lengths.to(ids.device)[:, None]
    return torch.cat([masked_mean(h1, mask), masked_max(h1, mask), masked_mean(h2, mask), masked_max(h2, mask)], dim=1)


class _Collate:
    def __init__(self, model: CharLM):
        self.model = model

    def __call__(self, batch):
        texts, labels = zip(*batch)
        return encode(self.model, list(texts)), torch.as_tensor(labels)


def text_loader(model: CharLM, dataset, batch_size: int = 16, shuffle: bool = False, seed: int = 0,
                group_by_length: bool = False):
    """A DataLoader of a `TextDataset`'s (text, label) pairs as ((ids, lengths), labels) for `CharLMClassifier`.

    `group_by_length=True` (with `shuffle=True`) batches texts of similar length (`loaders.LengthGroupedSampler`):
    the LSTMs run as many time steps as the batch's longest text, so fewer steps per epoch.
    """
    from .loaders import LengthGroupedSampler, make_loader

    sampler = LengthGroupedSampler.for_texts(dataset, lambda texts: [len(_ids(model, t)) for t in texts], batch_size,
                                             shuffle, group_by_length, seed)
    return make_loader(dataset, batch_size, shuffle=shuffle and sampler is None, seed=seed, num_workers=0,
                       sampler=sampler, collate_fn=_Collate(model))


@torch.no_grad()
def next_char_probs(model: CharLM, prefix: str, k: int = 5) -> list[tuple[str, float]]:
    """The k most likely next characters after `prefix`, with probabilities."""
    probs = torch.softmax(model.eval()(text_to_ids(model, prefix))[0], dim=0)
    p, i = probs.topk(k)
    return [(model.itos.get(int(j), "<pad>"), float(q)) for q, j in zip(p, i)]


@torch.no_grad()
def generate(model: CharLM, prefix: str = "", n: int = 60, temperature: float = 0.5, seed: int = 0) -> str:
    """Sample `n` characters after `prefix` (temperature 0 = greedy); seeded, so the book's output is reproducible."""
    if temperature < 0:
        raise ValueError(f"temperature must be ≥ 0, got {temperature}.")
    gen = torch.Generator().manual_seed(seed)
    text = prefix
    for _ in range(n):
        logits = model.eval()(text_to_ids(model, text))[0]
        logits[0] = -float("inf")  # never emit padding
        if temperature == 0:
            idx = int(logits.argmax())
        else:
            idx = int(torch.multinomial(torch.softmax(logits / temperature, 0), 1, generator=gen))
        if idx == model.vocab["<s>"]:  # textgenrnn marks the end of a text with its start token
            break
        text += model.itos[idx]
    return text[len(prefix):]


class Standardize(nn.Module):
    """(x - mean) / scale with fixed buffers (identity until a probe's StandardScaler is copied in)."""

    def __init__(self, width: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("scale", torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


class CharLMClassifier(nn.Module):
    """The LM as an encoder; a new head reads the mean and max of its LSTM states over the real characters.

    Input: `encode`'s (ids, lengths) (`text_loader` yields them): one pass over each whole text from the start state.
    The LM's own attention pooling was trained to predict the *next character*, so it looks at the last few
    positions; sentiment is spread over the whole text, so the head pools over all positions instead (as ULMFiT does).
    The head is standardise → dropout → linear, so a converged linear probe on `pooled_features` can be copied in as
    the trained head of stage 1 (`load_probe`).
    """

    def __init__(self, lm: CharLM, num_classes: int = 2, dropout: float = 0.2):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
        self.lm = lm
        self.lm.out.requires_grad_(False)  # the next-character layer is not used for classification
        self.lm.attention.requires_grad_(False)
        width = 2 * (lm.lstm1.hidden_size + lm.lstm2.hidden_size)
        self.head = nn.Sequential(Standardize(width), nn.Dropout(dropout), nn.Linear(width, num_classes))

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        if torch.is_tensor(batch):
            raise TypeError("CharLMClassifier takes encode()'s (ids, lengths) pair (text_loader yields it), not a tensor "
                            "of left-padded windows.")
        ids, lengths = batch
        return self.head(_pool(self.lm, ids, lengths))

    def load_probe(self, probe) -> "CharLMClassifier":
        """Copy a `utils.linear_probe` fitted on `pooled_features` into the head (its scaler and weights)."""
        scaler, logreg = probe.model[0], probe.model[-1]
        linear = self.head[-1]
        if logreg.coef_.shape[1] != linear.in_features:
            raise ValueError(f"The probe has {logreg.coef_.shape[1]} features; the head reads {linear.in_features} "
                             "(fit it on charlm.pooled_features).")
        w, b = torch.tensor(logreg.coef_, dtype=torch.float32), torch.tensor(logreg.intercept_, dtype=torch.float32)
        if w.shape[0] == 1:  # binary: logit difference w·x + b split symmetrically over two outputs
            if linear.out_features != 2:
                raise ValueError(f"A binary probe fits a 2-class head, this one has {linear.out_features} outputs.")
            w, b = torch.cat([-w / 2, w / 2]), torch.cat([-b / 2, b / 2])
        elif w.shape[0] != linear.out_features:
            raise ValueError(f"The probe has {w.shape[0]} classes, the head {linear.out_features}.")
        dev = linear.weight.device
        with torch.no_grad():
            self.head[0].mean.copy_(torch.tensor(scaler.mean_, dtype=torch.float32, device=dev))
            self.head[0].scale.copy_(torch.tensor(scaler.scale_, dtype=torch.float32, device=dev))
            linear.weight.copy_(w.to(dev))
            linear.bias.copy_(b.to(dev))
        return self

    def layer_groups(self) -> list[LayerGroup]:
        """Input to output, head last: the order ULMFiT unfreezes them in reverse (`utils.unfreeze_last(clf, k)`)."""
        return [LayerGroup("embedding", (self.lm.embedding,)), LayerGroup("lstm1", (self.lm.lstm1,)),
                LayerGroup("lstm2", (self.lm.lstm2,)), LayerGroup("head", (self.head,))]

"""Text for recurrent models: tokenising, a vocabulary, padded/packed batches, GloVe initialisation, an LSTM classifier."""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

from .checks import check_int, check_number, check_seed, check_size, check_texts

__all__ = ["tokenize", "masked_mean", "masked_max", "Vocab", "collate_tokens", "text_loader", "glove_matrix",
           "Coverage", "LSTMClassifier"]

# GloVe's (Stanford) convention: "doesn't" -> does n't, "it's" -> it 's. Any other apostrophe (a quoted 'word',
# rock 'n' roll) is dropped, other punctuation is its own token, and letters outside a-z stay inside their word
# (café, naïve). Curly quotes and dashes are mapped to ASCII first: 4 % of the training reviews write "isn’t" with
# U+2019, and without the mapping their negation never reaches the model.
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})
_TOKEN = re.compile(r"[^\W_]+(?=n't)|n't|'(?:s|re|ve|ll|d|m)(?![^\W_])|[^\W_]+|[^\w\s']")


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real (mask = True) positions of (batch, time, dim) states; padding never counts."""
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1)


def masked_max(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over the real positions of (batch, time, dim) states (a row with no real position gives zeros)."""
    out = h.masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).max(1).values
    return torch.where(torch.isfinite(out), out, torch.zeros_like(out))


def tokenize(text: str) -> list[str]:
    """Lower-case words split the way GloVe was trained ("isn't" and "isn’t" → "is", "n't"; "it's" → "it", "'s"),
    punctuation as separate tokens, quote apostrophes dropped, accented words kept whole."""
    if not isinstance(text, str):
        raise TypeError(f"text must be one string, got {type(text).__name__}; for several, loop: [tokenize(t) for t in texts].")
    return _TOKEN.findall(text.lower().translate(_QUOTES))


class Vocab:
    """Token ↔ index, built from training text only; 0 is padding and 1 stands for any unknown token."""

    PAD, UNK = 0, 1

    def __init__(self, texts: Sequence[str], min_freq: int = 2, max_size: int | None = None):
        min_freq = check_int(min_freq, "min_freq", 1, hint="(keep tokens seen at least this often in the training text)")
        max_size = check_size(max_size, "max_size", allow_none=True)
        counts = Counter(tok for t in check_texts(texts) for tok in tokenize(t))
        kept = [w for w, c in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0])) if c >= min_freq][:max_size]
        if not kept:
            raise ValueError(f"No token occurs at least min_freq={min_freq} times; lower min_freq or pass more text.")
        self.itos = ["<pad>", "<unk>", *kept]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.counts = counts

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, max_len: int | None = None) -> torch.Tensor:
        """Token ids of one text (unknown tokens → 1), cut to the first `max_len`."""
        max_len = check_size(max_len, "max_len", allow_none=True)
        ids = [self.stoi.get(tok, self.UNK) for tok in tokenize(check_texts([text], "text")[0])][:max_len] or [self.UNK]
        return torch.tensor(ids, dtype=torch.long)

    def unk_rate(self, texts: Sequence[str]) -> float:
        """Fraction of tokens in `texts` the vocabulary does not know."""
        toks = [tok for t in check_texts(texts) for tok in tokenize(t)]
        return sum(tok not in self.stoi for tok in toks) / max(len(toks), 1)


def collate_tokens(vocab: Vocab, max_len: int = 64):
    """A DataLoader collate_fn: raw (text, label) pairs → ((padded ids, lengths), labels), longest first in no order."""
    if not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a utils.text.Vocab built from the training texts, got {type(vocab).__name__}.")
    max_len = check_int(max_len, "max_len", 1, hint="(tokens kept per text)")

    def collate(batch):
        seqs = [vocab.encode(t, max_len) for t, _ in batch]
        lengths = torch.tensor([len(s) for s in seqs])
        return (pad_sequence(seqs, batch_first=True, padding_value=Vocab.PAD), lengths), torch.stack(
            [torch.as_tensor(y) for _, y in batch])
    return collate


def text_loader(dataset, vocab: Vocab, max_len: int = 64, batch_size: int = 16, shuffle: bool = False, seed: int = 0,
                group_by_length: bool = False):
    """A DataLoader of raw (text, label) pairs as ((padded ids, lengths), labels) for `LSTMClassifier`.

    `group_by_length=True` (with `shuffle=True`) batches texts of similar length (`loaders.LengthGroupedSampler`):
    an LSTM over packed sequences runs as many time steps as the batch's longest text, so fewer steps per epoch.
    """
    from .loaders import LengthGroupedSampler, make_loader

    collate = collate_tokens(vocab, max_len)
    sampler = LengthGroupedSampler.for_texts(
        dataset, lambda texts: [min(max(len(tokenize(t)), 1), max_len) for t in check_texts(texts)], batch_size,
        shuffle, group_by_length, seed)
    return make_loader(dataset, batch_size, shuffle=shuffle and sampler is None, seed=seed, num_workers=0,
                       sampler=sampler, collate_fn=collate)


@dataclass(frozen=True)
class Coverage:
    """How much of a vocabulary (by type and by running token) the pretrained vectors know."""

    types: float
    tokens: float
    missing: tuple[str, ...]


def glove_matrix(vocab: Vocab, glove, seed: int = 0) -> tuple[torch.Tensor, Coverage]:
    """An embedding matrix for `vocab` from GloVe; unknown words get small random vectors, padding stays zero."""
    if not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a utils.text.Vocab, got {type(vocab).__name__}.")
    if not (hasattr(glove, "vectors") and hasattr(glove, "index")):
        raise TypeError(f"glove must be utils.load_glove()'s result (vectors + index), got {type(glove).__name__}.")
    rng = np.random.default_rng(check_seed(seed))
    dim = glove.vectors.shape[1]
    scale = float(glove.vectors[:10000].std())
    mat = rng.normal(0, scale, size=(len(vocab), dim)).astype(np.float32)
    mat[Vocab.PAD] = 0
    found = [w for w in vocab.itos[2:] if w in glove.index]
    for w in found:
        mat[vocab.stoi[w]] = glove.vectors[glove.index[w]]
    missing = tuple(w for w in vocab.itos[2:] if w not in glove.index)
    total = sum(vocab.counts[w] for w in vocab.itos[2:])
    token_cov = sum(vocab.counts[w] for w in found) / max(total, 1)
    return torch.from_numpy(mat), Coverage(len(found) / max(len(vocab) - 2, 1), token_cov, missing)


class LSTMClassifier(nn.Module):
    """Embedding → bidirectional LSTM over packed sequences (padding never seen) → mean+max pool → linear."""

    def __init__(self, vocab_size: int, num_classes: int = 2, emb_dim: int = 50, hidden: int = 64,
                 embeddings: torch.Tensor | None = None, freeze_embeddings: bool = False, dropout: float = 0.3):
        super().__init__()
        vocab_size = check_int(vocab_size, "vocab_size", 2, hint="(len(vocab): padding, unknown and the words)")
        num_classes = check_int(num_classes, "num_classes", 2)
        emb_dim, hidden = check_int(emb_dim, "emb_dim", 1), check_int(hidden, "hidden", 1)
        dropout = check_number(dropout, "dropout", 0, 1, hi_open=True)
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=Vocab.PAD)
        if embeddings is not None:
            if not torch.is_tensor(embeddings):
                raise TypeError(f"embeddings must be a float tensor ({vocab_size}, {emb_dim}), e.g. from glove_matrix; got "
                                f"{type(embeddings).__name__}.")
            if embeddings.shape != (vocab_size, emb_dim):
                raise ValueError(f"embeddings are {tuple(embeddings.shape)}, expected ({vocab_size}, {emb_dim}).")
            self.embedding.weight.data.copy_(embeddings)
        self.embedding.weight.requires_grad_(not freeze_embeddings)
        self.lstm = nn.LSTM(emb_dim, hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(4 * hidden, num_classes)

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        ids, lengths = batch
        packed = pack_padded_sequence(self.drop(self.embedding(ids)), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        mask = ids != Vocab.PAD
        return self.fc(self.drop(torch.cat([masked_mean(out, mask), masked_max(out, mask)], dim=1)))

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

__all__ = ["MAX_CHARS", "tokenize", "check_texts", "check_labels", "Vocab", "collate_tokens", "glove_matrix",
           "Coverage", "LSTMClassifier"]

MAX_CHARS = 2000  # reviews are ~100 characters; anything far longer is probably a mistake (raise it if not)
# GloVe's (Stanford) convention: "doesn't" → does n't, "it's" → it 's; punctuation marks are tokens.
_TOKEN = re.compile(r"[a-z0-9]+(?=n't)|n't|'[a-z]+|[a-z0-9]+|[^\sa-z0-9']")


def check_texts(texts: Sequence[str], max_chars: int = MAX_CHARS) -> list[str]:
    """Reject what a tokenizer would silently mangle: non-strings, empty strings, runaway lengths."""
    if isinstance(texts, str) or not isinstance(texts, Sequence) or len(texts) == 0:
        raise TypeError("Pass a non-empty list of strings, e.g. ['a fine film'].")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"Item {i} is a {type(t).__name__}, not a string: {t!r}.")
        if not t.strip():
            raise ValueError(f"Item {i} is an empty string; drop it or replace it with real text.")
        if len(t) > max_chars:
            raise ValueError(f"Item {i} has {len(t):,} characters (limit {max_chars:,}); truncate it, or pass max_chars=.")
    return list(texts)


def check_labels(labels: Sequence, classes: Sequence[str]) -> list[int]:
    """Class names or indices → indices, with a clear error for a label the task does not have."""
    out = []
    for y in labels:
        if isinstance(y, str):
            if y not in classes:
                raise ValueError(f"Unknown label {y!r}; this task's labels are {list(classes)}.")
            out.append(list(classes).index(y))
        elif isinstance(y, (int, np.integer)) and 0 <= int(y) < len(classes):
            out.append(int(y))
        else:
            raise ValueError(f"Unknown label {y!r}; use one of {list(classes)} or an index below {len(classes)}.")
    return out


def tokenize(text: str) -> list[str]:
    """Lower-case words split the way GloVe was trained ("isn't" → "is", "n't"), punctuation as separate tokens."""
    return _TOKEN.findall(text.lower())


class Vocab:
    """Token ↔ index, built from training text only; 0 is padding and 1 stands for any unknown token."""

    PAD, UNK = 0, 1

    def __init__(self, texts: Sequence[str], min_freq: int = 2, max_size: int | None = None):
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
        ids = [self.stoi.get(tok, self.UNK) for tok in tokenize(check_texts([text])[0])][:max_len] or [self.UNK]
        return torch.tensor(ids, dtype=torch.long)

    def unk_rate(self, texts: Sequence[str]) -> float:
        """Fraction of tokens in `texts` the vocabulary does not know."""
        toks = [tok for t in texts for tok in tokenize(t)]
        return sum(tok not in self.stoi for tok in toks) / max(len(toks), 1)


def collate_tokens(vocab: Vocab, max_len: int = 64):
    """A DataLoader collate_fn: raw (text, label) pairs → ((padded ids, lengths), labels), longest first in no order."""
    def collate(batch):
        seqs = [vocab.encode(t, max_len) for t, _ in batch]
        lengths = torch.tensor([len(s) for s in seqs])
        return (pad_sequence(seqs, batch_first=True, padding_value=Vocab.PAD), lengths), torch.stack(
            [torch.as_tensor(y) for _, y in batch])
    return collate


@dataclass(frozen=True)
class Coverage:
    """How much of a vocabulary (by type and by running token) the pretrained vectors know."""

    types: float
    tokens: float
    missing: tuple[str, ...]


def glove_matrix(vocab: Vocab, glove, seed: int = 0) -> tuple[torch.Tensor, Coverage]:
    """An embedding matrix for `vocab` from GloVe; unknown words get small random vectors, padding stays zero."""
    rng = np.random.default_rng(seed)
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
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=Vocab.PAD)
        if embeddings is not None:
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
        mask = (ids != Vocab.PAD).unsqueeze(-1)
        mean = (out * mask).sum(1) / mask.sum(1).clamp(min=1)
        mx = out.masked_fill(~mask, float("-inf")).max(1).values
        return self.fc(self.drop(torch.cat([mean, mx], dim=1)))

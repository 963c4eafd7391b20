"""A pretrained character-level LSTM language model (textgenrnn's weights) ported to PyTorch, for ULMFiT-style transfer."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .assets import load_charlstm_weights
from .groups import LayerGroup
from .text import masked_max, masked_mean

__all__ = ["CONTEXT", "CharLM", "cudnn_to_torch_lstm", "load_pretrained_charlm", "text_to_ids", "next_char_probs",
           "generate", "CharLMClassifier"]

CONTEXT = 40  # the model reads the last 40 characters, left-padded with 0
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
    """Characters → ids as textgenrnn feeds them: `<s>` then the text, last `context` kept, left-padded with 0."""
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, (list, tuple)) or not texts or not all(isinstance(t, str) for t in texts):
        raise TypeError("text_to_ids() takes a string or a non-empty list of strings.")
    start = model.vocab["<s>"]
    rows = [([0] * context + [start] + [model.vocab.get(c, 0) for c in t])[-context:] for t in texts]
    return torch.tensor(rows, dtype=torch.long)


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


class CharLMClassifier(nn.Module):
    """The pretrained LM as an encoder; a new head reads the mean and max of its LSTM states over the real characters.

    The LM's own attention pooling was trained to predict the *next character*, so it looks at the last few
    positions; sentiment is spread over the whole text, so the head pools over all positions instead (as ULMFiT does).
    """

    def __init__(self, lm: CharLM, num_classes: int = 2, dropout: float = 0.2):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
        self.lm = lm
        self.lm.out.requires_grad_(False)  # the next-character layer is not used for classification
        self.lm.attention.requires_grad_(False)
        width = 2 * (lm.lstm1.hidden_size + lm.lstm2.hidden_size)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.lm.states(ids)[..., self.lm.embedding.embedding_dim:]  # lstm1 and lstm2 states
        mask = ids != 0
        return self.head(torch.cat([masked_mean(h, mask), masked_max(h, mask)], dim=1))

    def layer_groups(self) -> list[LayerGroup]:
        """Input to output, head last: the order ULMFiT unfreezes them in reverse (`utils.unfreeze_last(clf, k)`)."""
        return [LayerGroup("embedding", (self.lm.embedding,)), LayerGroup("lstm1", (self.lm.lstm1,)),
                LayerGroup("lstm2", (self.lm.lstm2,)), LayerGroup("head", (self.head,))]

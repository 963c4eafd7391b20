"""utils.text: tokenising, the vocabulary, padded batches, GloVe initialisation, the LSTM classifier, input checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import utils
from utils.checks import MAX_CHARS, check_texts
from utils.text import LSTMClassifier, Vocab, collate_tokens, glove_matrix, masked_max, masked_mean, text_loader, tokenize

TEXTS = ["A gem of a film.", "Dull, dull and far too long.", "It isn't a gem; it's dull.", "A fine, fine film!"]


def test_tokenize_follows_glove_conventions():
    assert tokenize("It's a film that doesn't work!") == ["it", "'s", "a", "film", "that", "does", "n't", "work", "!"]
    assert tokenize("CAN'T") == ["ca", "n't"]
    assert tokenize("They're 'great', I'd say") == ["they", "'re", "great", ",", "i", "'d", "say"]
    assert tokenize("'tis") == ["tis"]  # a quote before a word is not a clitic: dropped, the word stays whole


def test_tokenize_handles_curly_quotes_and_accents():
    """The bug: U+2019 apostrophes split "isn’t" into is ’ t (the negation was lost), accents split "café"."""
    assert tokenize("isn\u2019t 'the' café") == ["is", "n't", "the", "café"]
    assert tokenize("the film\u2019s \u201cbest\u201d \u2014 naïve") == ["the", "film", "'s", '"', "best", '"', "-", "naïve"]
    assert tokenize("rock 'n' roll, o'fallon, the '90s") == ["rock", "n", "roll", ",", "o", "fallon", ",", "the", "90s"]
    assert tokenize("It\u2019s") == tokenize("It's") == ["it", "'s"]


def test_masked_pooling_ignores_padding():
    h = torch.tensor([[[1.0, -5.0], [3.0, -1.0], [100.0, 100.0]],
                      [[-2.0, -4.0], [9.0, 9.0], [9.0, 9.0]],
                      [[7.0, 7.0], [7.0, 7.0], [7.0, 7.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]]).bool()
    assert masked_mean(h, mask).tolist() == [[2.0, -3.0], [-2.0, -4.0], [0.0, 0.0]]
    assert masked_max(h, mask).tolist() == [[3.0, -1.0], [-2.0, -4.0], [0.0, 0.0]]  # all-padding row: zeros, not -inf
    assert masked_mean(h, mask.long()).tolist() == masked_mean(h, mask).tolist()  # an int mask works too


def test_vocab_orders_by_frequency_and_maps_unknowns():
    vocab = Vocab(TEXTS, min_freq=2)
    assert vocab.itos[:2] == ["<pad>", "<unk>"]
    assert vocab.itos[2] in {"a", "."}  # the most frequent tokens come first
    assert "gem" in vocab.stoi and "long" not in vocab.stoi  # 'long' occurs once
    ids = vocab.encode("a long gem")
    assert ids.tolist() == [vocab.stoi["a"], Vocab.UNK, vocab.stoi["gem"]]
    assert vocab.encode("a gem a gem", max_len=2).tolist() == [vocab.stoi["a"], vocab.stoi["gem"]]
    assert 0 < vocab.unk_rate(["a long film"]) < 1


def test_collate_pads_and_reports_true_lengths():
    vocab = Vocab(TEXTS, min_freq=1)
    (ids, lengths), labels = collate_tokens(vocab, max_len=5)([("a gem", 1), ("dull , dull and far too long", 0)])
    assert ids.shape == (2, 5) and lengths.tolist() == [2, 5]
    assert ids[0, 2:].eq(Vocab.PAD).all() and labels.tolist() == [1, 0]


def test_glove_matrix_copies_known_vectors_and_counts_coverage():
    glove = utils.load_glove()
    vocab = Vocab(TEXTS + ["zzqxv zzqxv"], min_freq=1)
    mat, cov = glove_matrix(vocab, glove, seed=0)
    assert mat.shape == (len(vocab), 50)
    np.testing.assert_allclose(mat[vocab.stoi["film"]].numpy(), glove.vectors[glove.index["film"]])
    assert mat[Vocab.PAD].eq(0).all()
    assert "zzqxv" in cov.missing and 0 < cov.types < 1 and 0 < cov.tokens < 1
    again, _ = glove_matrix(vocab, glove, seed=0)
    assert torch.equal(mat, again)  # the random rows for missing words are seeded


def test_lstm_ignores_padding_and_can_freeze_embeddings():
    vocab = Vocab(TEXTS, min_freq=1)
    torch.manual_seed(0)
    model = LSTMClassifier(len(vocab), emb_dim=8, hidden=4, freeze_embeddings=True).eval()
    assert not model.embedding.weight.requires_grad
    one = collate_tokens(vocab, max_len=10)([("a gem", 1)])[0]
    padded = collate_tokens(vocab, max_len=10)([("a gem", 1), ("dull , dull and far too long", 0)])[0]
    torch.testing.assert_close(model(one)[0], model(padded)[0])  # packed sequences: the extra padding changes nothing


def test_lstm_learns_a_tiny_task():
    vocab = Vocab(TEXTS, min_freq=1)
    data = [("a gem", 1), ("a fine film", 1), ("dull", 0), ("far too long", 0)] * 8
    loader = DataLoader(data, batch_size=8, shuffle=True, collate_fn=collate_tokens(vocab),
                        generator=torch.Generator().manual_seed(0))
    utils.seed_everything(0)
    model = LSTMClassifier(len(vocab), emb_dim=8, hidden=8, dropout=0.0)
    history = utils.fit(model, loader, loader, epochs=15, lr=2e-2, progress=False, device=torch.device("cpu"))
    assert history.last["val_acc"] == 1.0


def test_embeddings_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"expected \(10, 8\)"):
        LSTMClassifier(10, emb_dim=8, embeddings=torch.zeros(10, 50))


@pytest.mark.parametrize("texts, exc, match", [
    ("a single string", TypeError, "list of strings, not one string"),
    ([], ValueError, "texts is empty"),
    (None, TypeError, "must be a list of strings, got NoneType"),
    (["fine", 3], TypeError, r"texts\[1\] is int"),
    (["fine", None], TypeError, "drop or fill missing values"),
    (["fine", "   "], ValueError, r"texts\[1\] is empty or blank"),
    (["x" * (MAX_CHARS + 1)], ValueError, f"has {MAX_CHARS + 1:,} characters"),
])
def test_bad_texts_are_refused_clearly(texts, exc, match):
    with pytest.raises(exc, match=match):
        check_texts(texts)
    with pytest.raises(exc, match=match):
        Vocab(texts)


def test_vocab_encode_checks_its_text():
    vocab = Vocab(TEXTS, min_freq=1)
    with pytest.raises(ValueError, match="empty or blank"):
        vocab.encode("  ")
    assert check_texts(("a", "b")) == ["a", "b"] and check_texts(["x" * 5000], max_chars=None) == ["x" * 5000]


def test_min_freq_too_high_says_what_to_do():
    with pytest.raises(ValueError, match="lower min_freq"):
        Vocab(["one two"], min_freq=5)


def test_text_loader_groups_by_length_into_fewer_time_steps():
    rng = np.random.default_rng(0)
    texts = [" ".join(["film"] * int(n)) for n in rng.integers(1, 30, size=64)]
    data = utils.TextDataset(texts, [i % 2 for i in range(64)], ["rotten", "fresh"])
    vocab = Vocab(texts, min_freq=1)

    def steps(loader):  # LSTM time steps over an epoch: each batch runs as many as its longest text
        return sum(int(lengths.max()) for (_, lengths), _ in loader)

    plain = text_loader(data, vocab, 32, batch_size=8, shuffle=True, seed=0)
    grouped = text_loader(data, vocab, 32, batch_size=8, shuffle=True, seed=0, group_by_length=True)
    assert steps(grouped) < 0.8 * steps(plain)
    seen = sorted(int(n) for (_, lengths), _ in grouped for n in lengths)
    assert seen == sorted(min(len(t.split()), 32) for t in texts)  # every text once per epoch
    with pytest.raises(ValueError, match="shuffle=True"):
        text_loader(data, vocab, group_by_length=True)

"""utils.charlm: the PyTorch port of textgenrnn's pretrained char-LSTM matches an independent NumPy reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import utils
from utils import charlm


@pytest.fixture(scope="module")
def lm():
    return charlm.load_pretrained_charlm()


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _reference_next_char(text: str) -> np.ndarray:
    """Straight from the CuDNN LSTM equations on the raw HDF5 arrays, with its own step loop (no torch)."""
    w = utils.load_charlstm_weights()
    a, vocab = w.arrays, w.vocab
    ids = ([0] * 40 + [vocab["<s>"]] + [vocab.get(c, 0) for c in text])[-40:]
    x = a["embedding/embedding/embeddings:0"][ids].astype(np.float64)
    layers_out = [x]
    for name in ("rnn_1", "rnn_2"):
        K, R, b = (a[f"{name}/{name}/{p}:0"].astype(np.float64) for p in ("kernel", "recurrent_kernel", "bias"))
        H = R.shape[0]
        # CuDNN canonical layout: gate g's input weights are block g's memory read as (H, in); W·x uses rows.
        Wi = [np.ascontiguousarray(K[:, g * H:(g + 1) * H]).reshape(H, -1) for g in range(4)]
        Wh = [np.ascontiguousarray(R[:, g * H:(g + 1) * H]) for g in range(4)]
        bi, bh = b[:4 * H].reshape(4, H), b[4 * H:].reshape(4, H)
        h, c, seq = np.zeros(H), np.zeros(H), []
        for t in range(len(ids)):
            pre = [Wi[g] @ layers_out[-1][t] + bi[g] + Wh[g] @ h + bh[g] for g in range(4)]
            i, f, gg, o = _sigmoid(pre[0]), _sigmoid(pre[1]), np.tanh(pre[2]), _sigmoid(pre[3])
            c = f * c + i * gg
            h = o * np.tanh(c)
            seq.append(h)
        layers_out.append(np.stack(seq))
    cat = np.concatenate(layers_out, axis=1)  # (40, 356)
    logits = cat @ a["attention/attention/attention_W:0"].astype(np.float64)[:, 0]
    att = np.exp(logits - logits.max())
    att /= att.sum()
    pooled = (cat * att[:, None]).sum(0)
    z = pooled @ a["output/output/kernel:0"].astype(np.float64) + a["output/output/bias:0"]
    p = np.exp(z - z.max())
    return p / p.sum()


@pytest.mark.parametrize("prefix", ["The bes", "I love th", "", "What is your favourite"])
def test_port_matches_numpy_reference(lm, prefix):
    with torch.no_grad():
        ours = torch.softmax(lm(charlm.text_to_ids(lm, prefix))[0].double(), 0).numpy()
    np.testing.assert_allclose(ours, _reference_next_char(prefix), atol=1e-5)


def test_completes_a_common_word(lm):
    top, p = charlm.next_char_probs(lm, "The bes", k=1)[0]
    assert top == "t" and p > 0.95


def test_naive_transpose_port_is_caught(lm):
    """The usual Keras→torch transpose loads without error but predicts badly: the tests above would fail on it."""
    broken = charlm.load_pretrained_charlm()
    for layer in (broken.lstm1, broken.lstm2):
        H = layer.hidden_size
        w = layer.weight_ih_l0.detach()
        naive = torch.cat([w[g * H:(g + 1) * H].reshape(-1).view(-1, H).T for g in range(4)])  # block.T, not reshape
        layer.weight_ih_l0.data.copy_(naive)
    good = charlm.next_char_probs(lm, "The bes", k=1)[0]
    bad = dict(charlm.next_char_probs(broken, "The bes", k=50))
    assert good[0] == "t" and bad.get("t", 0.0) < 0.5


def test_generation_is_seeded_and_in_vocabulary(lm):
    a = charlm.generate(lm, "The ", n=40, temperature=0.7, seed=3)
    b = charlm.generate(lm, "The ", n=40, temperature=0.7, seed=3)
    assert a == b and 0 < len(a) <= 40
    assert set(a) <= set(lm.vocab)
    assert charlm.generate(lm, "I love", n=20, temperature=0) == charlm.generate(lm, "I love", n=20, temperature=0, seed=9)


def test_text_to_ids_pads_left_and_keeps_the_last_40(lm):
    ids = charlm.text_to_ids(lm, ["ab", "x" * 100])
    assert ids.shape == (2, 40)
    assert ids[0, :37].eq(0).all() and ids[0, 37] == lm.vocab["<s>"]
    assert ids[1].eq(lm.vocab["x"]).all()


def test_classifier_head_and_groups(lm):
    clf = charlm.CharLMClassifier(lm, num_classes=2)
    out = clf(charlm.encode(lm, ["great film", "dull"]))
    assert out.shape == (2, 2)
    with pytest.raises(TypeError, match="lengths"):
        clf(charlm.text_to_ids(lm, ["great film"]))  # the old left-padded windows are refused, not misread
    groups = utils.layer_groups(clf)
    assert [g.name for g in groups] == ["embedding", "lstm1", "lstm2", "head"]  # input to output, head last
    assert [g.modules for g in groups] == [(lm.embedding,), (lm.lstm1,), (lm.lstm2,), (clf.head,)]
    params = [p for g in groups for p in g.parameters()]
    assert {id(p) for p in params} == {id(p) for p in clf.parameters() if p.requires_grad}


@pytest.mark.parametrize("call, exc, match", [
    (lambda m: charlm.text_to_ids(m, 42), TypeError, "string"),
    (lambda m: charlm.text_to_ids(m, []), TypeError, "non-empty"),
    (lambda m: charlm.generate(m, "a", temperature=-1), ValueError, "temperature"),
    (lambda m: charlm.CharLMClassifier(m, num_classes=1), ValueError, "at least 2"),
    (lambda m: charlm.cudnn_to_torch_lstm(np.zeros((3, 8)), np.zeros((2, 8)), np.zeros(4)), ValueError, "CuDNN"),
])
def test_bad_input(lm, call, exc, match):
    with pytest.raises(exc, match=match):
        call(lm)


def test_gradual_unfreezing_trains_one_more_group_each_step():
    clf = charlm.CharLMClassifier(charlm.load_pretrained_charlm())  # its own LM: this test changes requires_grad
    top_down = ["head", "lstm2", "lstm1", "embedding"]
    for k in range(4):  # k = 0: the head alone ... k = 3: everything
        opened = utils.unfreeze_last(clf, k)
        assert sorted(opened) == sorted(top_down[:k + 1])
        state = {g.name: g.trainable for g in utils.layer_groups(clf)}
        assert {n for n, on in state.items() if on} == set(top_down[:k + 1])
        assert all(p.requires_grad for g in utils.layer_groups(clf) if g.name in opened for p in g.parameters())
        # the LM's next-character layer and its attention are not used by the classifier: they never train
        assert not any(p.requires_grad for p in [*clf.lm.out.parameters(), *clf.lm.attention.parameters()])
    with pytest.raises(ValueError, match="k must be an integer from 0 to 3"):
        utils.unfreeze_last(clf, 4)


def test_discriminative_rates_fall_by_the_decay_factor(lm):
    clf = charlm.CharLMClassifier(lm)
    opt = utils.make_optimizer(clf, 1e-2, backbone_mult=0.5, decay=0.5)
    assert utils.group_lrs(opt) == pytest.approx({"embedding": 1.25e-3, "lstm1": 2.5e-3, "lstm2": 5e-3, "head": 1e-2})
    ulmfit = utils.group_lrs(utils.make_optimizer(clf, 1e-2, backbone_mult=1 / 2.6, decay=1 / 2.6))
    assert list(ulmfit.values()) == pytest.approx([1e-2 / 2.6 ** 3, 1e-2 / 2.6 ** 2, 1e-2 / 2.6, 1e-2])  # ULMFiT's rule
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert in_opt == {id(p) for p in clf.parameters() if p.requires_grad}  # each trainable weight once, frozen ones not
    assert not in_opt & {id(p) for p in clf.lm.out.parameters()}
    with pytest.raises(ValueError, match="decay"):
        utils.param_groups(clf, lr=1e-2, decay=2.6)  # a factor in (0, 1] now: 1/2.6, not 2.6


def test_classifier_pools_only_real_characters(lm):
    """Padding never enters the LSTMs (packed) and never enters the pooling: a text's features do not depend on
    the batch it is read in, and unknown characters (id 0, like padding) still count as characters."""
    texts = ["a fine film", "dull", "a much longer review that pads the others in its batch"]
    alone = torch.cat([charlm.pooled_features(lm, [t]) for t in texts])
    torch.testing.assert_close(charlm.pooled_features(lm, texts), alone, atol=1e-5, rtol=1e-5)
    ids, lengths = charlm.encode(lm, ["ab\u2603", "ab"])  # a snowman is not in the vocabulary: id 0
    assert lengths.tolist() == [4, 3] and ids[0, 3] == 0
    assert not torch.allclose(charlm.pooled_features(lm, ["ab\u2603"]), charlm.pooled_features(lm, ["ab"]))


def test_one_pass_starts_where_textgenrnn_reads_the_start_token(lm):
    """At `<s>` the one-pass reading (from the state after 39 pads) predicts exactly what textgenrnn's first window
    of a text predicts; later positions differ (a window restarts from zero state, the pass carries its state)."""
    ids, lengths = charlm.encode(lm, ["The best film", "x"])
    with torch.no_grad():
        one_pass = lm.next_char_logits(lm.run(ids, lengths))
        first_window = lm(charlm.text_to_ids(lm, ["", ""]))
    torch.testing.assert_close(one_pass[:, 0], first_window, atol=1e-4, rtol=1e-4)


def test_bits_per_char_regimes(lm):
    """The pretrained LM predicts review text well in its own regime (40-windows) and worse than a unigram model when
    read out of it (100-token windows from zero state), the bug of the old chapter."""
    texts = utils.rotten_tomatoes("val").texts[:12]
    native = charlm.bits_per_char(lm, texts, mode="window")
    long_window = charlm.bits_per_char(lm, texts, mode="window", context=100)
    assert native < 3.0 < 4.4 < long_window


def test_lm_batches_targets_are_the_next_characters(lm):
    (x, y), = charlm.lm_batches(lm, ["abc", "de"], texts_per_batch=2, shuffle=False)
    ids, lengths = x
    end = lm.vocab["<s>"]
    v = lm.vocab
    assert lengths.tolist() == [3, 4]  # sorted by length: "de" first; <s> + characters
    assert y.tolist() == [v["d"], v["e"], end, v["a"], v["b"], v["c"], end]
    assert charlm.NextCharObjective(lm)(x).shape == (7, lm.out.out_features)


def test_adapt_lowers_held_out_loss_and_is_cached(tmp_path, monkeypatch):
    """Stage 2 on a tiny corpus: the LM's loss on more of the same text falls, the base LM is unchanged, and a second
    call loads the cached weights instead of training."""
    monkeypatch.setenv("TRANSFER_BOOK_CACHE", str(tmp_path))
    base = charlm.load_pretrained_charlm()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    texts = ["zqx zqx zqx zqx zqx zqx"] * 20
    adapted, hist = charlm.adapt(base, texts, epochs=2, lr=3e-3, texts_per_batch=5, val_texts=texts[:2], progress=False)
    assert charlm.bits_per_char(adapted, texts[:2]) < charlm.bits_per_char(base, texts[:2]) - 1
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    assert len(list(tmp_path.rglob("adapted_*.safetensors"))) == 1
    again, hist2 = charlm.adapt(base, texts, epochs=2, lr=3e-3, texts_per_batch=5, val_texts=texts[:2], progress=False)
    assert all(torch.equal(a, b) for a, b in zip(adapted.state_dict().values(), again.state_dict().values()))
    assert hist2.rows == hist.rows


def test_unlabelled_texts_hold_no_held_out_movie():
    texts = charlm.unlabelled_texts(20_000, seed=1)
    assert 20_000 <= sum(map(len, texts)) < 20_000 + 2 * 256
    held = set(utils.rotten_tomatoes("val").texts) | set(utils.rotten_tomatoes("test").texts)
    assert not held & set(texts) and max(map(len, texts)) <= 256
    assert texts == charlm.unlabelled_texts(20_000, seed=1) and texts != charlm.unlabelled_texts(20_000, seed=2)


def test_probe_copied_into_the_head_gives_the_probes_predictions(lm):
    data = utils.rotten_tomatoes("train").subset(list(range(40)))
    feats = charlm.pooled_features(lm, data.texts)
    probe = utils.linear_probe(feats, data.labels, feats, data.labels, cs=(1.0,))
    clf = charlm.CharLMClassifier(lm).load_probe(probe).eval()
    probs, _ = utils.predict(clf, charlm.text_loader(lm, data, batch_size=16))
    np.testing.assert_allclose(probs[:, 1].numpy(), probe.predict_proba(feats)[:, 1], atol=1e-4)


def test_pooled_features_are_cached_per_weights_and_texts(lm, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFER_BOOK_CACHE", str(tmp_path))
    first = charlm.pooled_features(lm, ["a fine film", "dull"])
    assert len(list(tmp_path.rglob("pooled_*.safetensors"))) == 1
    torch.testing.assert_close(charlm.pooled_features(lm, ["a fine film", "dull"]), first, rtol=0, atol=0)
    other = charlm.CharLM(lm.vocab)  # other weights: a new entry, not the cached one
    assert not torch.allclose(charlm.pooled_features(other, ["a fine film", "dull"]), first)
    assert len(list(tmp_path.rglob("pooled_*.safetensors"))) == 2


def test_text_loader_can_group_by_length(lm):
    data = utils.rotten_tomatoes("train").subset(list(range(64)))
    plain = charlm.text_loader(lm, data, batch_size=8, shuffle=True, seed=0)
    grouped = charlm.text_loader(lm, data, batch_size=8, shuffle=True, seed=0, group_by_length=True)
    steps = {name: sum(int(lengths.max()) for (_, lengths), _ in loader) for name, loader in
             (("plain", plain), ("grouped", grouped))}
    assert steps["grouped"] < 0.9 * steps["plain"]
    assert sorted(int(n) for (_, lengths), _ in grouped for n in lengths) == sorted(
        int(n) for (_, lengths), _ in plain for n in lengths)  # the same texts, once each

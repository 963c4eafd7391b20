"""utils.features: the on-disk activation cache (keys, hits, equality with recomputation) and the trainable tail."""
from __future__ import annotations

import copy

import pytest
import torch

import utils
from utils import features


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder for this test only."""
    monkeypatch.setenv("TRANSFER_BOOK_CACHE", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def model():
    return utils.replace_head(utils.create_backbone(), 3).eval()


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(0)
    return torch.rand(6, 3, 32, 32)


def test_cache_dir_follows_the_environment_variable(cache):
    assert features.cache_dir() == cache


def test_miss_then_hit_gives_identical_tensors(cache, model, images):
    before = dict(features.STATS)
    first = features.cached_activations(model, images, (0, 1, 3), "rand", "train", progress=False)
    assert features.STATS["misses"] == before["misses"] + 3
    assert len(list(cache.glob("*.safetensors"))) == 3
    second = features.cached_activations(model, images, (0, 1, 3), "rand", "train", progress=False)
    assert features.STATS["hits"] == before["hits"] + 3
    for k in (0, 1, 3):
        assert torch.equal(first[k], second[k])
    assert first[0].shape == (6, 1280) and first[1].shape == (6, 320, 1, 1)


def test_cached_features_equal_recomputed_ones(cache, model, images):
    cached = features.cached_features(model, images, progress=False)
    with torch.no_grad():
        x = utils.normalize(images, model.data_config)
        direct = model.forward_head(model.forward_features(x), pre_logits=True)
    assert torch.allclose(cached, direct, atol=1e-5)


@pytest.mark.parametrize("k", [0, 1, 2, 5, 9])
def test_tail_on_cached_input_equals_the_full_model(cache, model, images, k):
    acts = features.extract(model, images, (k,), progress=False)
    with torch.no_grad():
        full = model(utils.normalize(images, model.data_config))
        assert torch.allclose(features.tail(model, k)(acts[k]), full, atol=1e-4)


def test_key_changes_with_split_size_cut_content_and_weights(model, images):
    base = features.cache_key(model, images, 1, "rand", "train")
    assert base == features.cache_key(model, images.clone(), 1, "rand", "train")  # content, not identity
    others = [features.cache_key(model, images, 1, "rand", "val"),
              features.cache_key(model, images[:5], 1, "rand", "train"),
              features.cache_key(model, images, 2, "rand", "train"),
              features.cache_key(model, images.flip(-1), 1, "rand", "train"),
              features.cache_key(model, images, 1, "other", "train")]
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.blocks[0][0].conv_dw.weight.add_(0.01)
    others.append(features.cache_key(changed, images, 1, "rand", "train"))
    assert len({base, *others}) == len(others) + 1


def test_key_ignores_weights_above_the_cut(model, images):
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.conv_head.weight.mul_(2)  # conv_head is above the k=1 cut: the cached input does not depend on it
    assert features.cache_key(changed, images, 1) == features.cache_key(model, images, 1)
    assert features.cache_key(changed, images, 0) != features.cache_key(model, images, 0)


def test_training_mode_is_refused(cache, images):
    m = utils.create_backbone().train()
    with pytest.raises(RuntimeError, match="eval"):
        features.cached_features(m, images, progress=False)


def test_bad_inputs_give_clear_errors(model, images):
    with pytest.raises(ValueError, match="from 0"):
        features.check_cut(model, 10)
    with pytest.raises(ValueError, match="from 0"):
        features.check_cut(model, -1)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        features.images_of(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="empty"):
        features.images_of(torch.rand(0, 3, 8, 8))
    with pytest.raises(TypeError, match="ImageTensorDataset"):
        features.images_of([1, 2, 3])
    augmented = utils.ImageTensorDataset(images, torch.zeros(6), ["a"], transform=lambda x: x)
    with pytest.raises(ValueError, match="augmentation"):
        features.images_of(augmented)
    with pytest.raises(ValueError, match="batch_size"):
        features.extract(model, images, (0,), batch_size=0, progress=False)


def test_refresh_recomputes_and_clear_cache_empties(cache, model, images):
    features.cached_features(model, images, progress=False)
    misses = features.STATS["misses"]
    features.cached_features(model, images, progress=False, refresh=True)
    assert features.STATS["misses"] == misses + 1
    assert features.clear_cache() == 1 and not list(cache.glob("*.safetensors"))


def test_cut_module_is_the_first_layer_of_the_block(model):
    assert features.cut_module(model, 0) is model.classifier
    assert features.cut_module(model, 1) is model.conv_head  # the merged unit conv_head+bn2 starts with the conv
    assert features.cut_module(model, 2) is model.blocks[6]


def test_default_cache_dir_is_the_gitignored_repo_folder(monkeypatch):
    monkeypatch.delenv("TRANSFER_BOOK_CACHE", raising=False)
    path = features.cache_dir()
    assert path.parts[-2:] == (".cache", "features") and (path.parents[1] / ".gitignore").exists()
    assert "/.cache/" in (path.parents[1] / ".gitignore").read_text()

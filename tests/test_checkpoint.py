"""utils.checkpoint: exact safetensors round trips, atomic writes that never lose a saved model, clear errors."""
from __future__ import annotations

import pytest
import torch

import utils

META = {"backbone": "efficientnet_lite0", "classes": [str(d) for d in range(10)], "val_acc": 0.875}


@pytest.fixture
def tuned(effnet_copy):
    """The pretrained model with a new 10-class head, slightly perturbed so no tensor equals a fresh model's."""
    utils.replace_head(effnet_copy, 10)
    with torch.no_grad():
        effnet_copy.bn2.running_mean.add_(0.25)
        effnet_copy.conv_stem.weight.mul_(1.5)
    return effnet_copy


def test_round_trip_is_exact_for_every_tensor(tuned, tmp_path):
    path = utils.save_checkpoint(tuned, tmp_path / "sub" / "digits.safetensors", meta=META)
    assert path.is_file() and path.parent.name == "sub"  # parent folders are created
    fresh = utils.create_backbone(pretrained=False, num_classes=10)
    assert not torch.equal(fresh.classifier.weight, tuned.classifier.weight)
    assert utils.load_checkpoint(fresh, path) == META
    want, got = tuned.state_dict(), fresh.state_dict()
    assert set(want) == set(got)
    assert all(torch.equal(want[k], got[k]) for k in want)  # weights and BN buffers, bit for bit
    assert utils.read_metadata(path) == META


def test_metadata_defaults_to_empty(tmp_path):
    model = torch.nn.Linear(3, 2)
    path = utils.save_checkpoint(model, tmp_path / "m.safetensors")
    assert utils.read_metadata(path) == {}


def test_failed_save_keeps_the_old_checkpoint_and_leaves_no_litter(tmp_path, monkeypatch):
    import safetensors.torch

    model = torch.nn.Linear(3, 2)
    path = utils.save_checkpoint(model, tmp_path / "m.safetensors", meta={"version": 1})
    saved = path.read_bytes()

    def crash(model, filename, metadata=None, **kw):
        with open(filename, "wb") as f:
            f.write(b"half a file")  # the disk filled up, or the kernel died mid-write
        raise OSError("No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_model", crash)
    with torch.no_grad():
        model.weight.zero_()
    with pytest.raises(OSError, match="No space left"):
        utils.save_checkpoint(model, path, meta={"version": 2})
    assert path.read_bytes() == saved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no .tmp files left behind
    assert utils.read_metadata(path) == {"version": 1}


def test_successful_save_leaves_no_temporary_files(tmp_path):
    for i in range(2):
        utils.save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "a.safetensors", meta={"i": i})
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]
    assert utils.read_metadata(tmp_path / "a.safetensors") == {"i": 1}


def test_refuses_to_overwrite_when_asked(tmp_path):
    path = utils.save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "a.safetensors")
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        utils.save_checkpoint(torch.nn.Linear(2, 2), path, overwrite=False)


@pytest.mark.parametrize("name", ["model.pt", "model.pth", "model", "model.safetensor"])
def test_save_requires_a_safetensors_name(tmp_path, name):
    with pytest.raises(ValueError, match=r"Use a '\.safetensors' file name"):
        utils.save_checkpoint(torch.nn.Linear(2, 2), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_load_of_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No checkpoint at .*nope\.safetensors.*save_checkpoint"):
        utils.load_checkpoint(torch.nn.Linear(2, 2), tmp_path / "nope.safetensors")


def test_load_into_a_different_head_size_is_a_value_error(tuned, tmp_path):
    path = utils.save_checkpoint(tuned, tmp_path / "ten.safetensors", meta=META)
    other = utils.create_backbone(pretrained=False, num_classes=5)
    with pytest.raises(ValueError, match=r"does not fit this model.*same architecture and head size.*efficientnet_lite0"):
        utils.load_checkpoint(other, path)


def test_load_into_a_different_architecture_is_a_value_error(tmp_path):
    path = utils.save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "lin.safetensors")
    with pytest.raises(ValueError, match="does not fit this model"):
        utils.load_checkpoint(torch.nn.Sequential(torch.nn.Linear(2, 2)), path)

"""utils.freeze: freezing by depth or name, counting parameters, and keeping frozen BatchNorm truly frozen."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import utils

EFFNET_PARAMS = 4_652_008  # learnable; the file's 4,694,024 numbers also count 42,016 BN running statistics
EFFNET_BLOCKS = ["conv_stem+bn1", *(f"blocks.{i}" for i in range(7)), "conv_head+bn2"]


def _trainable_names(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_count_parameters_of_the_pretrained_model(effnet):
    count = utils.count_parameters(effnet)
    assert count.total == EFFNET_PARAMS and count.frozen == 0
    assert count.total + sum(b.numel() for n, b in effnet.named_buffers() if "running_" in n) == 4_694_024
    assert "100.0% trainable" in str(count)


def test_backbone_blocks_of_efficientnet(effnet):
    blocks = utils.backbone_blocks(effnet)
    assert [n for n, _ in blocks] == EFFNET_BLOCKS
    in_blocks = sum(p.numel() for _, m in blocks for p in m.parameters())
    assert in_blocks + 1280 * 1000 + 1000 == EFFNET_PARAMS  # blocks + head cover every parameter once


def test_unfreeze_last_zero_is_a_linear_probe(effnet_copy):
    assert utils.unfreeze_last(effnet_copy, 0) == []
    assert _trainable_names(effnet_copy) == {"classifier.weight", "classifier.bias"}
    assert utils.count_parameters(effnet_copy).trainable == 1280 * 1000 + 1000


def test_unfreeze_last_all_blocks_is_full_fine_tuning(effnet_copy):
    utils.freeze(effnet_copy)
    opened = utils.unfreeze_last(effnet_copy, len(EFFNET_BLOCKS))
    assert opened == EFFNET_BLOCKS
    assert utils.count_parameters(effnet_copy).frozen == 0


def test_unfreeze_last_two_opens_exactly_the_top_blocks(effnet_copy):
    assert utils.unfreeze_last(effnet_copy, 2) == ["blocks.6", "conv_head+bn2"]
    names = _trainable_names(effnet_copy)
    assert all(n.startswith(("blocks.6.", "conv_head.", "bn2.", "classifier.")) for n in names)
    assert "blocks.5.0.conv_pw.weight" not in names and "bn2.weight" in names
    rows = dict((n, t) for n, _, t in utils.trainable_summary(effnet_copy))
    assert rows["blocks.6"] and rows["classifier"] and not rows["blocks.5"] and not rows["conv_stem+bn1"]


def test_unfreeze_last_without_head(effnet_copy):
    utils.unfreeze_last(effnet_copy, 1, train_head=False)
    assert not effnet_copy.classifier.weight.requires_grad and effnet_copy.conv_head.weight.requires_grad


@pytest.mark.parametrize("k", [10, 100, -1, 1.5])
def test_unfreeze_last_out_of_range_lists_the_blocks(effnet_copy, k):
    with pytest.raises(ValueError, match=r"k must be between 0 and 9 .*conv_stem\+bn1, blocks\.0.*conv_head\+bn2"):
        utils.unfreeze_last(effnet_copy, k)


def test_freeze_and_unfreeze_by_pattern(effnet_copy):
    n = utils.freeze(effnet_copy, "blocks.*")
    assert n == sum(1 for name, _ in effnet_copy.named_parameters() if name.startswith("blocks."))
    assert not effnet_copy.blocks[3][0].conv_dw.weight.requires_grad and effnet_copy.conv_stem.weight.requires_grad
    assert utils.unfreeze(effnet_copy, ["blocks.6", "blocks.5.3.*"]) > 0
    assert effnet_copy.blocks[6][0].conv_pw.weight.requires_grad and effnet_copy.blocks[5][3].bn1.bias.requires_grad
    assert not effnet_copy.blocks[5][2].bn1.bias.requires_grad


@pytest.mark.parametrize("pattern", ["layer4.*", ["fc", "head.*"]])
def test_freeze_pattern_matching_nothing_shows_real_names(effnet_copy, pattern):
    with pytest.raises(ValueError, match=r"No parameter name matches .*Names look like: conv_stem\.weight"):
        utils.freeze(effnet_copy, pattern)


def test_frozen_bn_eval_puts_only_frozen_batchnorm_in_eval(effnet_copy):
    utils.unfreeze_last(effnet_copy, 1)  # conv_head + bn2 open, everything below frozen
    effnet_copy.train()
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in effnet_copy.modules())
    assert utils.frozen_bn_eval(effnet_copy) == n_bn - 1
    assert effnet_copy.bn2.training and not effnet_copy.bn1.training and not effnet_copy.blocks[6][0].bn3.training
    assert effnet_copy.training  # the model itself (dropout, ...) stays in train mode


def test_fit_of_a_probe_leaves_the_frozen_backbone_bit_identical(effnet_copy):
    utils.replace_head(effnet_copy, 2)
    utils.unfreeze_last(effnet_copy, 0)
    before = {k: v.clone() for k, v in effnet_copy.state_dict().items()}
    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.rand(4, 3, 32, 32) * 2 - 1, torch.tensor([0, 1, 0, 1])), batch_size=4)
    # two epochs: fit() calls model.train() at each one, so frozen BN must be put back in eval every time
    utils.fit(effnet_copy, loader, epochs=2, lr=0.05, device=torch.device("cpu"), progress=False)
    after = effnet_copy.state_dict()
    backbone = [k for k in before if not k.startswith("classifier.")]
    assert any("running_mean" in k for k in backbone) and any("num_batches_tracked" in k for k in backbone)
    changed = [k for k in backbone if not torch.equal(before[k], after[k])]
    assert changed == [], f"frozen weights or BN statistics moved: {changed[:5]}"
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])  # the probe did learn


def test_fit_without_frozen_bn_eval_would_have_moved_statistics(effnet_copy):
    """Control for the test above: BN statistics do drift in train mode, so 'unchanged' is a real check."""
    utils.unfreeze_last(effnet_copy, 0)
    effnet_copy.train()
    before = effnet_copy.bn1.running_mean.clone()
    with torch.no_grad():
        effnet_copy(torch.rand(4, 3, 32, 32))
    assert not torch.equal(before, effnet_copy.bn1.running_mean)

"""utils.checks: the one home of argument validation. Each check accepts what it should, refuses the rest with a message
that names the argument, shows what was received and says what to do."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utils import checks


# --- numbers ------------------------------------------------------------------------------------------------------------
def test_check_int_accepts_numpy_ints_and_refuses_bools_floats_and_strings():
    assert checks.check_int(np.int64(3), "n", 1) == 3 and type(checks.check_int(np.int64(3), "n")) is int
    for bad in (True, 2.0, "3", None):
        with pytest.raises(TypeError, match=r"n must be an integer, got"):
            checks.check_int(bad, "n")
    with pytest.raises(ValueError, match=r"n must be an integer from 1 to 5, got 9\. \(hint\)"):
        checks.check_int(9, "n", 1, 5, hint="(hint)")


@pytest.mark.parametrize("bad", [-1, 2**32, 0.5, "0", True])
def test_check_seed_keeps_seeds_in_numpy_range(bad):
    with pytest.raises((TypeError, ValueError), match="seed must be an integer"):
        checks.check_seed(bad)
    assert checks.check_seed(2**32 - 1) == 2**32 - 1


def test_check_size_allows_none_only_when_asked():
    assert checks.check_size(None, "size", allow_none=True) is None
    with pytest.raises(TypeError, match="size must be an integer"):
        checks.check_size(None, "size")
    with pytest.raises(ValueError, match=r"size must be an integer >= 8, got 4"):
        checks.check_size(4, "size", lo=8)


@pytest.mark.parametrize("bad, exc", [(math.nan, ValueError), (math.inf, ValueError), (0.0, ValueError), (-1e-3, ValueError),
                                      ("1e-3", TypeError), (True, TypeError)])
def test_check_lr_refuses_non_positive_and_non_finite(bad, exc):
    with pytest.raises(exc, match="lr must be a"):
        checks.check_lr(bad)


def test_check_number_bounds_open_and_closed():
    assert checks.check_number(1.0, "p", 0, 1) == 1.0
    with pytest.raises(ValueError, match=r"p must be a finite number in \[0, 1\), got 1\.0"):
        checks.check_number(1.0, "p", 0, 1, hi_open=True)
    assert checks.check_fraction(0.1, "mult") == 0.1
    with pytest.raises(ValueError, match=r"ten times lower"):
        checks.check_fraction(0.0, "mult")


# --- choices, lengths, emptiness, callables, models ---------------------------------------------------------------------
def test_check_choice_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown level 'x'; choose one of: a, b"):
        checks.check_choice("x", "level", ["a", "b"])


def test_check_same_length_names_both_and_refuses_non_sequences():
    with pytest.raises(ValueError, match=r"images and labels must have the same length: 3 vs 2"):
        checks.check_same_length([1, 2, 3], [1, 2], "images", "labels")
    with pytest.raises(TypeError, match="labels must be a sequence"):
        checks.check_same_length([1, 2], "ab", "images", "labels")


def test_check_nonempty_and_callable_and_model():
    assert checks.check_nonempty([1], "x") == 1
    with pytest.raises(ValueError, match="images is empty. Pass one."):
        checks.check_nonempty([], "images", "Pass one.")
    assert checks.check_callable(None, "transform") is None
    with pytest.raises(TypeError, match="transform must be callable"):
        checks.check_callable("light", "transform")
    with pytest.raises(TypeError, match=r"model must be a torch nn.Module, got 'resnet' \(str\)"):
        checks.check_model("resnet")


# --- text and names -----------------------------------------------------------------------------------------------------
def test_check_texts_refuses_a_bare_string_instead_of_reading_its_characters():
    with pytest.raises(TypeError, match=r"not one string \(it would be read character by character\); wrap it"):
        checks.check_texts("A fine film.")
    assert checks.check_texts(("a", "b")) == ["a", "b"]
    for bad, match in [([], "empty"), (["a", None], r"texts\[1\] is NoneType"), (["a", " "], r"texts\[1\] is empty or blank"),
                       (["x" * 3000], "3,000 characters")]:
        with pytest.raises((TypeError, ValueError), match=match):
            checks.check_texts(bad)


def test_check_names_wants_distinct_strings_one_per_output():
    assert checks.check_names(("cat", "dog"), "classes", 2) == ["cat", "dog"]
    for bad, match in [("ab", "not one string"), ([], "is empty"), (["a", "a"], "must be distinct"), ([0, 1], r"classes\[0\] is 0"),
                       (["a"], "1 names but the model has 2 outputs")]:
        with pytest.raises((TypeError, ValueError), match=match):
            checks.check_names(bad, "classes", 2)


# --- images, labels, features, indices ----------------------------------------------------------------------------------
def test_check_images_scales_uint8_and_keeps_float_batches():
    x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    assert torch.equal(checks.check_images(x), x.float() / 255)
    y = torch.rand(2, 3, 4, 4)
    assert checks.check_images(y) is y


@pytest.mark.parametrize("x, exc, match", [
    (np.zeros((2, 3, 4, 4)), TypeError, "images_from_arrays"),
    (torch.rand(3, 4, 4), ValueError, r"One image: x\[None\]"),
    (torch.rand(2, 1, 4, 4), ValueError, r"Grayscale\? Use x.expand"),
    (torch.rand(2, 4, 4, 3), ValueError, r"Channels-last input\? Use x.permute\(0, 3, 1, 2\)"),
    (torch.rand(2, 3, 4, 4) * 255, ValueError, "0-255 values: divide by 255"),
    (torch.rand(2, 3, 4, 4) * 2 - 1, ValueError, "normalised already"),
    (torch.full((2, 3, 4, 4), math.nan), ValueError, "NaN or inf values"),
    (torch.zeros(2, 3, 4, 4, dtype=torch.int32), TypeError, "uint8 \\(0-255\\) or float"),
])
def test_check_images_refuses_what_would_give_wrong_answers(x, exc, match):
    with pytest.raises(exc, match=match):
        checks.check_images(x)


def test_check_images_any_channel_count_when_asked():
    assert checks.check_images(torch.rand(2, 1, 4, 4), channels=None).shape == (2, 1, 4, 4)


def test_check_labels_accepts_integral_forms_and_refuses_the_rest():
    assert checks.check_labels([0, 1, 2]).dtype == torch.long
    assert checks.check_labels(np.array([0.0, 2.0])).tolist() == [0, 2]
    for bad, exc, match in [
        ("012", TypeError, "sequence of integer class indices"), (None, TypeError, "sequence"),
        (torch.tensor([True, False]), TypeError, "bool tensor"), (["cat", "dog"], TypeError, "Map class names"),
        ([0.5, 1.0], TypeError, "integer class indices"), ([[0, 1]], ValueError, "One-hot"), ([-1, 0], ValueError, ">= 0"),
        ([0, 3], ValueError, r"class index 3 but there are only 2 classes")]:
        with pytest.raises(exc, match=match):
            checks.check_labels(bad, "labels", 2)


def test_check_features_and_indices():
    assert checks.check_features(np.ones((3, 2), np.float64)).dtype == torch.float32
    for bad, match in [(torch.ones(2, 3, 4), "Flatten"), (torch.ones(0, 3), "empty"), (torch.full((2, 2), math.nan), "NaN"),
                       ("x", "float tensor")]:
        with pytest.raises((TypeError, ValueError), match=match):
            checks.check_features(bad, "features")
    assert checks.check_indices(np.array([2, 0]), "rows", 3).tolist() == [2, 0]
    for bad, match in [(np.array([True, False]), "mask"), ([0, 5], r"0\.\.2"), ([0.5], "integer row numbers")]:
        with pytest.raises((TypeError, ValueError), match=match):
            checks.check_indices(bad, "rows", 3)


# --- checkpoint metadata ------------------------------------------------------------------------------------------------
def test_check_json_names_the_first_entry_json_cannot_store():
    ok = {"classes": ["a", "b"], "acc": 0.9, "nested": {"k": [1, None, True]}}
    assert checks.check_json(ok) is ok and checks.check_json(None) == {}
    for bad, match in [({"n": np.int64(3)}, r"meta\['n'\] is np.int64\(3\) \(type int64\).*\.item\(\)"),
                       ({"acc": torch.tensor([0.9])}, r"meta\['acc'\].*Tensor"), ({"a": [1, math.nan]}, r"meta\['a'\]\[1\] is nan"),
                       ({1: "x"}, "keys must be strings"), ("note", "must be a dict")]:
        with pytest.raises(TypeError, match=match):
            checks.check_json(bad)

"""Helpers for *Transfer Learning and Fine-Tuning in PyTorch*: every chapter imports what it needs from here.

Layers, from the bottom: `checks` (input validation) and `device`; `cache` (on-disk cache, fingerprints, atomic
writes); `assets` (bundled weights and data) and `data`/`loaders`; `models` and `groups` (layer groups, freezing);
`optim` (per-group learning rates, schedules, LR finder) and `train` (the one training step, fit, gradual unfreezing);
`evidence` (seeds run side by side, spreads, paired comparisons, generated sentences). Chapter-specific modules sit
on top (`features`, `explorer`, `augment`, `diagnose`, `adapt`, `zoo`, `smallcnn`, `text`, `charlm`, `bert`,
`distributed`, `calibration`, `interpret`, `showcase`, `deploy`, `distill`).
Heavy libraries (torchvision, timm, transformers) are imported inside the functions that need them.

A reader's own data: `images_from_arrays` / `image_folder` (images in the model's convention), `review_task` (a new
text task from the bundled reviews), `feature_loaders` (cached features to loaders), `save_model` / `load_model` (a
fine-tuned model, with its classes and input convention, in one call each). Every public function checks its
arguments on arrival through `checks`.
"""
from .assets import (AssetMissingError, imagenet_categories, load_charlstm_weights, load_efficientnet_lite0, load_glove,
                     load_minilm, minilm_path)
from .checkpoint import load_checkpoint, load_model, read_metadata, save_checkpoint, save_model
from .data import (SPLITS, ImageTensorDataset, TextDataset, digit_task, image_folder, images_from_arrays, lfw_faces,
                   mnist_digits, review_task, rotten_tomatoes, split_indices, subsample_per_class, torchvision_dataset,
                   FewLabels, few_labels)
from .device import (amp_dtype, ensure_offline_flags, environment, get_device, is_online, model_device, recorded_bench,
                     seed_everything)
from .groups import (LayerGroup, ParamCount, backbone_groups, classifier_name, count_parameters, freeze, frozen_bn_eval,
                     get_classifier, layer_groups, register_layer_groups, trainable_summary, unfreeze, unfreeze_last)
from .loaders import feature_loaders, make_loader
from .models import (BUNDLED, DataConfig, OfflineError, create_backbone, data_config, list_backbones, replace_head,
                     track_fine_tuning)
from .optim import group_lrs, lr_find, make_optimizer, make_scheduler, param_groups, warmup_cosine, warmup_linear
from .plots import plot_history, show_feature_maps, show_filters, show_images
from .probe import linear_probe
from .smallcnn import SmallCNN, small_cnn
from .train import History, evaluate, fine_tune, fit, gradual_unfreeze, predict, to_device, train_step
from .vision import PHOTOS, classify, load_photo, normalize, preprocess, to_tensor, topk

__all__ = ["AssetMissingError", "BUNDLED", "DataConfig", "FewLabels", "History", "ImageTensorDataset", "LayerGroup", "OfflineError", "PHOTOS", "ParamCount", "SPLITS", "SmallCNN", "TextDataset", "amp_dtype", "backbone_groups", "classifier_name", "classify", "count_parameters", "create_backbone", "data_config", "digit_task", "ensure_offline_flags", "environment", "evaluate", "feature_loaders", "few_labels", "fine_tune", "fit", "freeze", "frozen_bn_eval", "get_classifier", "get_device", "gradual_unfreeze", "group_lrs", "image_folder", "imagenet_categories", "images_from_arrays", "is_online", "layer_groups", "lfw_faces", "linear_probe", "list_backbones", "load_charlstm_weights", "load_checkpoint", "load_efficientnet_lite0", "load_glove", "load_minilm", "load_model", "load_photo", "lr_find", "make_loader", "make_optimizer", "make_scheduler", "minilm_path", "mnist_digits", "model_device", "normalize", "param_groups", "plot_history", "predict", "preprocess", "read_metadata", "recorded_bench", "register_layer_groups", "replace_head", "review_task", "rotten_tomatoes", "save_checkpoint", "save_model", "seed_everything", "show_feature_maps", "show_filters", "show_images", "small_cnn", "split_indices", "subsample_per_class", "to_device", "to_tensor", "topk", "torchvision_dataset", "track_fine_tuning", "train_step", "trainable_summary", "unfreeze", "unfreeze_last", "warmup_cosine", "warmup_linear"]
__version__ = "0.2.0"

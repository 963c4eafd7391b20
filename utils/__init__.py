"""Helpers for *Transfer Learning and Fine-Tuning in PyTorch*: every chapter imports what it needs from here.

Heavy libraries (torchvision, timm, transformers) are imported inside the functions that need them,
so `import utils` stays cheap in a chapter that does not use them.
"""
from .assets import (AssetMissingError, imagenet_categories, load_charlstm_weights, load_efficientnet_lite0, load_glove,
                     load_minilm, minilm_path)
from .checkpoint import load_checkpoint, read_metadata, save_checkpoint
from .data import (SPLITS, ImageTensorDataset, TextDataset, image_folder, lfw_faces, mnist_digits, rotten_tomatoes,
                   split_indices, subsample_per_class, torchvision_dataset)
from .device import amp_dtype, ensure_offline_flags, get_device, is_online, seed_everything
from .freeze import (ParamCount, backbone_blocks, count_parameters, freeze, frozen_bn_eval, trainable_summary, unfreeze,
                     unfreeze_last)
from .models import (BUNDLED, DataConfig, OfflineError, classifier_name, create_backbone, data_config, get_classifier,
                     list_backbones, replace_head)
from .plots import plot_history, show_feature_maps, show_filters, show_images
from .train import History, evaluate, fit, make_optimizer, predict, to_device
from .vision import PHOTOS, classify, load_photo, normalize, preprocess, to_tensor, topk

__version__ = "0.1.0"

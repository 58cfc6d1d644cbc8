"""The perceptual loss of the TAP supplement (A.2, eq. 2-3; Table 1b, models H1 and H2).

``L_feat(I_gen, I_gt) = (1/N) sum_j ||phi_j(I_gen) - phi_j(I_gt)||^2 / (c_j h_j w_j)``, where
``phi_j`` is the ``c_j x h_j x w_j`` feature map of layer ``j`` of a VGG-16 (Simonyan and
Zisserman, ICLR 2015) trained on ImageNet, the loss network of Johnson et al. ("Perceptual
losses for real-time style transfer and super-resolution", ECCV 2016), and ``N`` the number of
layers used. Pre-training then minimizes ``L_pix + w_feat L_feat`` (eq. 3). The supplement found
it did not help on synthetic renders (ScanObjectNN PB-T50-RS: H1, perceptual alone, 86.3; H2,
with the 20 : 1 pixel loss, 87.8; G4, pixel loss alone, 88.5).

The network is torchvision's ``vgg16`` (its ``features``, frozen, in eval mode), images
normalized with ImageNet's channel means and deviations as torchvision's weights expect. Its
weights are read from a local file only, never downloaded: the ``feat_weights`` setting, or
torchvision's cache (``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``, where
``torchvision.models.vgg16(weights="IMAGENET1K_V1")`` puts them).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from tap3d.train.torchfile import WeightsError, load_torch_file

__all__ = ["VGG16_LAYERS", "PerceptualLoss", "vgg16_weights_path"]

#: The ReLU outputs of VGG-16's 13 convolutions -> their index in torchvision's
#: ``vgg16().features``.
VGG16_LAYERS = {"relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8, "relu3_1": 11,
                "relu3_2": 13, "relu3_3": 15, "relu4_1": 18, "relu4_2": 20, "relu4_3": 22,
                "relu5_1": 25, "relu5_2": 27, "relu5_3": 29}

#: torchvision's ImageNet normalization (``VGG16_Weights.IMAGENET1K_V1.transforms``).
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def vgg16_weights_path(path: str = "") -> str:
    """The VGG-16 ImageNet weights file: ``path`` when given, else torchvision's cache entry.

    Raises:
        WeightsError: no file there; the message says where to put one.
    """
    if path:
        if not os.path.isfile(path):
            raise WeightsError(f"{path}: no such file (feat_weights: VGG-16 ImageNet weights)")
        return path
    import torchvision

    name = os.path.basename(torchvision.models.VGG16_Weights.IMAGENET1K_V1.url)
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", name)
    if not os.path.isfile(cached):
        raise WeightsError(
            f"w_feat > 0 needs VGG-16 ImageNet weights, which tap3d never downloads: put "
            f"torchvision's {name} at {cached} (where torchvision.models.vgg16("
            f"weights='IMAGENET1K_V1') saves it on a machine with network), or set feat_weights "
            f"to a file of the same state dict")
    return cached


class PerceptualLoss(nn.Module):
    """Eq. 2 of the TAP supplement over the chosen VGG-16 layers (module docstring).

    Args:
        layers: names of :data:`VGG16_LAYERS` (``N`` = their count).
        weights: the weights file (:func:`vgg16_weights_path`): torchvision's VGG-16 state dict
            (``features.*`` and ``classifier.*``) or its ``features`` alone.
        trust: see :func:`tap3d.train.torchfile.load_torch_file`.

    Raises:
        ValueError: no layer, or a name not in :data:`VGG16_LAYERS`.
        WeightsError: no weights file, or one that does not fit VGG-16's features (the file
            and the entries named).
    """

    def __init__(self, layers, weights: str = "", trust: bool = False):
        super().__init__()
        import torchvision

        unknown = [name for name in layers if name not in VGG16_LAYERS]
        if unknown or not layers:
            raise ValueError(f"perceptual layers must be among {list(VGG16_LAYERS)}, got "
                             f"{list(layers)}")
        self.layers = sorted(VGG16_LAYERS[name] for name in layers)
        path = vgg16_weights_path(weights)
        state = load_torch_file(path, trust=trust)
        if not isinstance(state, dict):
            raise WeightsError(f"{path}: holds a {type(state).__name__}, not a state dict")
        if any(key.startswith("features.") for key in state):
            state = {k[len("features."):]: v for k, v in state.items()
                     if k.startswith("features.")}
        features = torchvision.models.vgg16(weights=None).features[:self.layers[-1] + 1]
        expected = features.state_dict()
        state = {k: v for k, v in state.items() if k in expected}  # the layers used
        missing = sorted(set(expected) - set(state))
        wrong = sorted(k for k in state if state[k].shape != expected[k].shape)
        if missing or wrong:
            raise WeightsError(f"{path}: not VGG-16's features: missing {missing}, wrong shape "
                               f"{wrong}")
        features.load_state_dict(state)
        self.features = features.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True):
        """The loss network stays in eval mode."""
        return super().train(False)

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """``phi_j(images)`` for the chosen layers, each ``(B, c_j, h_j, w_j)``.

        Args:
            images: ``(B, 3, S, S)`` float RGB in [0, 1].
        """
        x = (images - self.mean) / self.std
        maps = []
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self.layers:
                maps.append(x)
        return maps

    def forward(self, generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``L_feat``, averaged over the batch: a float32 scalar.

        Args:
            generated: ``(B, 3, S, S)`` float in [0, 1] (gradients flow to it).
            target: ``(B, 3, S, S)`` float in [0, 1].
        """
        ours = self.feature_maps(generated)
        with torch.no_grad():
            theirs = self.feature_maps(target)
        total = generated.new_zeros((), dtype=torch.float32)
        for a, b in zip(ours, theirs):
            squared = ((a.float() - b.float()) ** 2).flatten(1).sum(1)  # per image
            total = total + squared.mean() / a[0].numel()
        return total / len(ours)

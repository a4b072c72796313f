"""Losses of perceptual models: VGG feature loss and a patch discriminator (adversarial).

Feature loss: L1 between features of output and target at the five ReLU stages of the
VGG16 backbone that ships inside the ``stlpips-pytorch`` wheel (shift-tolerant variant,
its ImageNet-trained convolutions; nothing is downloaded), weighted 0.1, 0.1, 1, 1, 1 as
in Real-ESRGAN (loss ``perceptual``); and, optionally (loss ``featnorm``), the LPIPS-style
distance of the same features: each pixel's feature vector scaled to unit length, squared
differences summed over channels, averaged over pixels and over the five stages with equal
weights (no learned weights). Only the backbone is used, frozen; the AlexNet ST-LPIPS that
judges the perceptual models (its own network and learned layer weights) is never part of
training.

Adversarial loss: a spectral-normalised VGG-style patch discriminator with the
relativistic average loss of ESRGAN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LAYER_WEIGHTS = (0.1, 0.1, 1.0, 1.0, 1.0)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)


class VGGFeatureLoss(nn.Module):
    """``l1_weight`` x the Real-ESRGAN feature L1 + ``norm_weight`` x the unit-feature distance."""

    def __init__(self, l1_weight: float = 1.0, norm_weight: float = 0.0) -> None:
        super().__init__()
        self.l1_weight, self.norm_weight = l1_weight, norm_weight
        from ..metrics import _load_stlpips

        lp = _load_stlpips("vgg", "cpu")
        self.scaling = lp.scaling_layer
        self.net = lp.net
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatureLoss:  # always frozen, in eval mode
        return super().train(False)

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        a = self.net(self.scaling(out * 2 - 1))
        with torch.no_grad():
            b = self.net(self.scaling(target * 2 - 1))
        loss = out.new_zeros(())
        if self.l1_weight:
            plain = sum(w * F.l1_loss(x, y) for w, x, y in zip(LAYER_WEIGHTS, a, b, strict=True))
            loss = loss + self.l1_weight * plain
        if self.norm_weight:
            dist = sum((_unit(x) - _unit(y)).pow(2).sum(1).mean() for x, y in zip(a, b, strict=True))
            loss = loss + self.norm_weight * dist / len(a)
        return loss


def _block(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.utils.parametrizations.spectral_norm(nn.Conv2d(cin, cout, 3, stride, 1)),
            nn.LeakyReLU(0.2, inplace=True)]


class PatchDiscriminator(nn.Module):
    """Real/fake logits per patch (receptive field ~40 px)."""

    def __init__(self, nf: int = 48) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_block(3, nf, 1), *_block(nf, nf, 2), *_block(nf, nf * 2, 1), *_block(nf * 2, nf * 2, 2),
            *_block(nf * 2, nf * 4, 1), *_block(nf * 4, nf * 4, 2),
            nn.utils.parametrizations.spectral_norm(nn.Conv2d(nf * 4, 1, 3, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x * 2 - 1)


def relativistic_losses(d_real: torch.Tensor, d_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(generator loss, discriminator loss) of the relativistic average GAN."""
    real_rel = d_real - d_fake.mean()
    fake_rel = d_fake - d_real.mean()
    ones, zeros = torch.ones_like(d_real), torch.zeros_like(d_real)
    bce = F.binary_cross_entropy_with_logits
    g = (bce(real_rel, zeros) + bce(fake_rel, ones)) / 2
    d = (bce(real_rel, ones) + bce(fake_rel, zeros)) / 2
    return g, d

"""A small convolutional baseline, the model with the inductive biases a ViT lacks.

Book chapter 1, "Inductive bias". Convolutions assume locality (each output sees a 3x3
neighbourhood) and share their weights across positions (translation equivariance); pooling
adds a little translation invariance. Sized to about the parameter count of the ``mnist`` ViT,
and trained with the same ``vitlib.train`` recipe, so the comparison is about the assumptions.

Shape legend: B batch, C channels, H/W image height/width.
"""

import itertools

import torch
from torch import nn

__all__ = ["SmallCNN"]


def conv_block(in_chans: int, out_chans: int) -> nn.Sequential:
    """Two 3x3 convolutions with BatchNorm and ReLU, then 2x2 max pooling: halves H and W."""
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_chans),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_chans),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class SmallCNN(nn.Module):
    """Three conv blocks (32, 64, 96 channels), global average pooling and a linear head.

    About 200,000 parameters, like the ``mnist`` ViT preset.
    """

    def __init__(self, in_chans: int = 1, num_classes: int = 10, widths: tuple[int, ...] = (32, 64, 96)) -> None:
        super().__init__()
        self.arguments = {"in_chans": in_chans, "num_classes": num_classes, "widths": list(widths)}  # to rebuild it
        channels = (in_chans, *widths)
        self.features = nn.Sequential(*[conv_block(a, b) for a, b in itertools.pairwise(channels)])
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, num_classes)."""
        features = self.features(images)  # (B, widths[-1], H / 8, W / 8)
        return self.head(features.mean(dim=(2, 3)))  # global average pooling, then the classifier

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

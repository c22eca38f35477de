"""Checkers for chapter 1, inductive bias: receptive fields, translation, and weight sharing.

from vitlib.exercises import inductive_bias
inductive_bias.check_receptive_field(my_receptive_field)
"""

import torch

from vitlib.exercises._checking import Case, Mistake, Verdict, check

__all__ = ["check_receptive_field", "check_translate", "check_weight_sharing"]


def _receptive_field(num_layers: int, kernel_size: int) -> int:
    """Side of the square one output of ``num_layers`` stride-1 k x k convolutions sees: 1 + L (k - 1).

    Each layer widens the window by k - 1 pixels: k // 2 on each side for an odd k, and for an
    even k one pixel fewer on one side than on the other. Chapter 1's
    ``conv_receptive_field`` measures the same with gradients, and a test checks they agree.
    """
    return 1 + num_layers * (kernel_size - 1)


RECEPTIVE_FIELD_MISTAKES = [
    Mistake(
        "the kernel sizes are added up (L k): neighbouring windows overlap, so each layer adds only "
        "k - 1 pixels to the window: 1 + L (k - 1).",
        lambda layers, k: layers * k,
    ),
    Mistake(
        "the kernel sizes are multiplied (k^L): that growth needs strides or pooling between the layers; "
        "stride-1 convolutions grow the window linearly with depth.",
        lambda layers, k: k**layers,
    ),
    Mistake(
        "the centre pixel is missing: with no layer at all an output sees its own pixel, 1 + L (k - 1).",
        lambda layers, k: layers * (k - 1),
    ),
    Mistake(
        "k // 2 pixels on each side holds for odd kernels only: an even k x k kernel is not centred, and "
        "widens the window by k - 1 pixels, k / 2 on one side and k / 2 - 1 on the other: 1 + L (k - 1).",
        lambda layers, k: 1 + 2 * layers * (k // 2),
    ),
    Mistake("the kernel size is ignored: 2 L + 1 holds only for 3 x 3 kernels.", lambda layers, k: 2 * layers + 1),
]


def check_receptive_field(function) -> Verdict:
    """Check ``function(num_layers, kernel_size)`` -> the side, in pixels, of the receptive field of one
    output of ``num_layers`` stacked stride-1 convolutions with square ``kernel_size`` kernels."""
    layouts = [(1, 3), (2, 3), (5, 3), (3, 5), (2, 7), (0, 3), (1, 2), (3, 4), (2, 6)]
    cases = [Case(f"{layers} layer{'s' * (layers != 1)} of {k}x{k}", (layers, k)) for layers, k in layouts]
    return check("receptive_field", function, _receptive_field, cases, RECEPTIVE_FIELD_MISTAKES)


def _translate(images: torch.Tensor, right: int, down: int) -> torch.Tensor:
    return torch.roll(images, shifts=(down, right), dims=(-2, -1))


def _zero_filled(images: torch.Tensor, right: int, down: int) -> torch.Tensor:
    shifted = torch.zeros_like(images)
    height, width = images.shape[-2:]
    shifted[..., max(down, 0) : height + min(down, 0), max(right, 0) : width + min(right, 0)] = images[
        ..., max(-down, 0) : height - max(down, 0), max(-right, 0) : width - max(right, 0)
    ]
    return shifted


TRANSLATE_MISTAKES = [
    Mistake(
        "right and down are swapped: `right` moves along the width (the last axis, dims=-1), "
        "`down` along the height (dims=-2).",
        lambda x, right, down: torch.roll(x, shifts=(right, down), dims=(-2, -1)),
    ),
    Mistake(
        "the image moves the wrong way: a positive `right` moves the content right (torch.roll with a "
        "positive shift), a positive `down` moves it down.",
        lambda x, right, down: torch.roll(x, shifts=(-down, -right), dims=(-2, -1)),
    ),
    Mistake(
        "the pixels that leave one side are dropped (zeros come in) instead of wrapping around to the "
        "other side, as chapter 1's shift does so that no part of the digit is lost.",
        _zero_filled,
    ),
    Mistake(
        "only the horizontal shift is applied; `down` must move the image too.",
        lambda x, right, down: torch.roll(x, shifts=right, dims=-1),
    ),
]


def check_translate(function) -> Verdict:
    """Check ``function(images, right, down)``: (B, C, H, W) images moved ``right`` and ``down``
    pixels (negative: left, up), wrapping around the borders, like `torch.roll`."""
    generator = torch.Generator().manual_seed(0)
    cases = [
        Case(f"{shape} images, right {right}, down {down}", (torch.randn(*shape, generator=generator), right, down))
        for shape, right, down in [((2, 1, 28, 28), 7, 3), ((1, 3, 10, 12), -2, 5), ((3, 1, 8, 8), 1, -1)]
    ]
    return check("translate", function, _translate, cases, TRANSLATE_MISTAKES, atol=0, rtol=0)


def _weight_sharing(in_channels: int, out_channels: int, kernel_size: int, height: int, width: int) -> tuple[int, int]:
    conv = out_channels * (in_channels * kernel_size**2 + 1)  # one k x k filter per output channel, + bias
    pixels = height * width  # a dense layer maps all C_in H W inputs to all C_out H W outputs
    dense = (in_channels * pixels) * (out_channels * pixels) + out_channels * pixels
    return conv, dense


WEIGHT_SHARING_MISTAKES = [
    Mistake(
        "the biases are missing: a convolution has one per output channel, a dense layer one per output "
        "(C_out H W of them).",
        lambda ci, co, k, h, w: (co * ci * k * k, ci * h * w * co * h * w),
    ),
    Mistake(
        "the convolution's bias is missing: one per output channel.",
        lambda ci, co, k, h, w: (co * ci * k * k, _weight_sharing(ci, co, k, h, w)[1]),
    ),
    Mistake(
        "the convolution's weights forget the input channels: each filter is C_in x k x k.",
        lambda ci, co, k, h, w: (co * (k * k + 1), _weight_sharing(ci, co, k, h, w)[1]),
    ),
    Mistake(
        "the dense layer's bias is missing: one per output, C_out H W.",
        lambda ci, co, k, h, w: (_weight_sharing(ci, co, k, h, w)[0], ci * h * w * co * h * w),
    ),
    Mistake(
        "the dense layer's bias counts one per output channel; without sharing there is one per output "
        "value, C_out H W.",
        lambda ci, co, k, h, w: (_weight_sharing(ci, co, k, h, w)[0], ci * h * w * co * h * w + co),
    ),
]


def check_weight_sharing(function) -> Verdict:
    """Check ``function(in_channels, out_channels, kernel_size, height, width)`` -> (conv, dense):
    the parameter count of a k x k convolution (with bias, 'same' padding) and of the dense layer
    (nn.Linear on the flattened image, with bias) that maps the same C_in x H x W input to the same
    C_out x H x W output."""
    cases = [
        Case(f"{ci} -> {co} channels, {k}x{k} kernel, {h}x{w} image", (ci, co, k, h, w))
        for ci, co, k, h, w in [(1, 32, 3, 28, 28), (3, 64, 5, 32, 32), (16, 8, 1, 7, 9)]
    ]
    return check("weight_sharing", function, _weight_sharing, cases, WEIGHT_SHARING_MISTAKES)

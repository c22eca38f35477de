"""Moving weights between vitlib and the ViTs practitioners use: timm and torchvision.

The way out of the book: the model built in it is the real ViT, so its weights can be carried
into timm (``to_timm``) and pretrained timm or torchvision weights can be loaded into vitlib
(``from_timm``, ``from_torchvision``), with the same outputs to float32 rounding.

vitlib uses timm's module names, so timm's state dict maps one to one. torchvision packs the same
numbers under other names: ``in_proj_weight`` of ``nn.MultiheadAttention`` is timm's ``qkv``
weight, [W_q; W_k; W_v] stacked the same way.
"""

import re

import torch
from torch import nn

from vitlib.encoder import LAYER_NORM_EPS
from vitlib.model import VisionTransformer, ViTConfig

__all__ = ["from_timm", "from_torchvision", "to_timm"]


def _require(condition: bool, what: str, fix: str) -> None:
    if not condition:
        raise ValueError(f"cannot convert this model: {what}. {fix}")


def _square(size, what: str) -> int:
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    _require(height == width, f"{what} is {height}x{width}, vitlib supports square ones only", "Use square sizes.")
    return height


def from_timm(model: nn.Module) -> VisionTransformer:
    """A vitlib model with the architecture and weights of a timm ``VisionTransformer``.

    Supported: the original ViT of the paper, i.e. a CLS token with ``global_pool='token'``, or
    no CLS token with ``global_pool='avg', fc_norm=False``; learned or no position embeddings;
    and DeiT's ``VisionTransformerDistilled`` (a distillation token and ``head_dist``).

    Raises:
        ValueError: the model is not a timm ViT, or uses a feature vitlib does not have
            (register tokens, layer scale, QK-norm, fc_norm, ...); the message names it.
    """
    from timm.models.deit import VisionTransformerDistilled
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    _require(
        isinstance(model, TimmViT),
        f"expected a timm.models.VisionTransformer, got {type(model).__name__}",
        "Create it with timm.create_model('vit_...') or timm.models.VisionTransformer(...).",
    )
    block = model.blocks[0]
    if model.has_class_token:
        _require(model.global_pool == "token", f"global_pool={model.global_pool!r} with a CLS token", "Use 'token'.")
        pool = "cls"
    else:
        _require(model.global_pool == "avg", f"global_pool={model.global_pool!r}", "Use 'avg' without a CLS token.")
        pool = "mean"
    for name, module in [("fc_norm", model.fc_norm), ("norm_pre", model.norm_pre), ("ls1", block.ls1),
                         ("attn.q_norm", block.attn.q_norm), ("patch_embed.norm", model.patch_embed.norm)]:  # fmt: skip
        _require(isinstance(module, nn.Identity), f"it has {name}", f"Build the timm model without {name}.")
    _require(model.reg_token is None, "it has register tokens", "Build it with reg_tokens=0.")
    _require(not model.no_embed_class, "no_embed_class=True", "Build it with no_embed_class=False.")
    _require(isinstance(model.head, nn.Linear), "it has no classification head", "Build it with num_classes > 0.")
    _require(isinstance(block.mlp.act, nn.GELU), f"MLP activation {block.mlp.act}", "Use GELU.")
    _require(block.norm1.eps == LAYER_NORM_EPS, f"LayerNorm eps {block.norm1.eps}", f"Use {LAYER_NORM_EPS}.")
    config = ViTConfig(
        image_size=_square(model.patch_embed.img_size, "the image size"),
        patch_size=_square(model.patch_embed.patch_size, "the patch size"),
        in_chans=model.patch_embed.proj.in_channels,
        num_classes=model.head.out_features,
        dim=model.embed_dim,
        depth=len(model.blocks),
        heads=block.attn.num_heads,
        mlp_dim=block.mlp.fc1.out_features,
        pool=pool,
        pos_embed="learned" if model.pos_embed is not None else "none",
        qkv_bias=block.attn.qkv.bias is not None,
        distilled=isinstance(model, VisionTransformerDistilled),
    )
    vit = VisionTransformer(config)
    _load_exactly(vit, model.state_dict(), source="timm")
    return vit.train(model.training)


def to_timm(vit: VisionTransformer) -> nn.Module:
    """The same network as a timm ``VisionTransformer``, weights copied, outputs equal.

    A distilled model becomes timm's ``VisionTransformerDistilled``, which, like vitlib's, returns
    the mean of its two heads (unless ``set_distilled_training(True)`` in training mode).
    """
    from timm.models.deit import VisionTransformerDistilled
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    config = vit.config
    _require(
        config.norm_first,
        "norm_first=False (post-norm blocks)",
        "timm's VisionTransformer has pre-norm blocks only; convert a norm_first=True model.",
    )
    _require(
        config.pos_embed != "learned_2d",
        "pos_embed='learned_2d' (learned row and column embeddings)",
        "timm's VisionTransformer has no factored 2-D table; convert a model with pos_embed='learned', "
        "or copy model.position_embeddings() into a pos_embed='learned' model first.",
    )
    _require(
        not (config.distilled and config.pos_embed == "none"),
        "distilled=True with pos_embed='none'",
        "timm's VisionTransformerDistilled always has a position embedding; convert a model that has one.",
    )
    timm_class = VisionTransformerDistilled if config.distilled else TimmViT
    model = timm_class(
        img_size=config.image_size,
        patch_size=config.patch_size,
        in_chans=config.in_chans,
        num_classes=config.num_classes,
        global_pool="token" if config.pool == "cls" else "avg",
        class_token=config.pool == "cls",
        fc_norm=False,  # vitlib normalizes every token before pooling, as the paper does
        embed_dim=config.dim,
        depth=config.depth,
        num_heads=config.heads,
        # timm takes a ratio and rounds down: aim at the middle of the integer
        mlp_ratio=(config.mlp_dim + 0.5) / config.dim,
        qkv_bias=config.qkv_bias,
        pos_embed="learn" if config.pos_embed != "none" else "none",  # sin-cos becomes a learnable copy
    )
    model.load_state_dict(vit.state_dict())
    return model.train(vit.training)


def from_torchvision(model: nn.Module) -> VisionTransformer:
    """A vitlib model with the architecture and weights of a ``torchvision.models.VisionTransformer``.

    Raises:
        ValueError: not a torchvision ViT, or one with a representation layer or a conv stem.
    """
    from torchvision.models import VisionTransformer as TorchvisionViT

    _require(
        isinstance(model, TorchvisionViT),
        f"expected a torchvision.models.VisionTransformer, got {type(model).__name__}",
        "Create it with torchvision.models.vit_b_16() or VisionTransformer(...).",
    )
    _require(isinstance(model.conv_proj, nn.Conv2d), "it has a convolutional stem", "Use conv_stem_configs=None.")
    _require(not hasattr(model.heads, "pre_logits"), "it has a representation layer", "Use representation_size=None.")
    config = ViTConfig(
        image_size=model.image_size,
        patch_size=model.patch_size,
        in_chans=model.conv_proj.in_channels,
        num_classes=model.num_classes,
        dim=model.hidden_dim,
        depth=len(model.encoder.layers),
        heads=model.encoder.layers[0].num_heads,
        mlp_dim=model.mlp_dim,
    )
    vit = VisionTransformer(config)
    _load_exactly(vit, {_torchvision_to_vitlib_name(k): v for k, v in model.state_dict().items()}, "torchvision")
    return vit.train(model.training)


# torchvision name -> vitlib (= timm) name; \1 is the block index.
_TORCHVISION_NAMES = [
    (r"^class_token$", "cls_token"),
    (r"^conv_proj\.", "patch_embed.proj."),
    (r"^encoder\.pos_embedding$", "pos_embed"),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.ln_1\.", r"blocks.\1.norm1."),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.self_attention\.in_proj_(weight|bias)$", r"blocks.\1.attn.qkv.\2"),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.self_attention\.out_proj\.", r"blocks.\1.attn.proj."),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.ln_2\.", r"blocks.\1.norm2."),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.mlp\.0\.", r"blocks.\1.mlp.fc1."),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.mlp\.3\.", r"blocks.\1.mlp.fc2."),
    (r"^encoder\.ln\.", "norm."),
    (r"^heads\.head\.", "head."),
]


def _torchvision_to_vitlib_name(name: str) -> str:
    for pattern, replacement in _TORCHVISION_NAMES:
        renamed, count = re.subn(pattern, replacement, name)
        if count:
            return renamed
    return name  # unknown names are reported by _load_exactly


def _load_exactly(vit: VisionTransformer, state: dict[str, torch.Tensor], source: str) -> None:
    """Load every tensor, refusing missing, unexpected or mis-shaped ones with a clear message."""
    expected = vit.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = [f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                 if k in state and state[k].shape != v.shape]  # fmt: skip
    _require(
        not (missing or unexpected or misshaped),
        f"the {source} weights do not match the vitlib model (missing {missing}, unexpected {unexpected}, "
        f"mis-shaped {misshaped})",
        "The source model uses a variant vitlib does not implement.",
    )
    vit.load_state_dict(state)

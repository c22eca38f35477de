"""Checkers for chapter 4, encoder blocks: stochastic depth, the post-norm block, the parameter count.

from vitlib.exercises import encoder
encoder.check_drop_path(my_drop_path)
"""

import dataclasses
import math

import torch
from torch import nn

from vitlib.encoder import Block
from vitlib.exercises._checking import (
    Case,
    Mistake,
    Verdict,
    _changed_inputs,
    _finish,
    _kind,
    _readers_traceback,
    check,
    clone_args,
)
from vitlib.model import PRESETS, VisionTransformer, ViTConfig

__all__ = ["check_drop_path", "check_parameter_count", "check_post_norm_block"]


# --- DropPath -------------------------------------------------------------------------------------


def _drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """The reference: one keep-or-drop decision per sample, kept samples divided by 1 - p."""
    if not training or p == 0.0:
        return x
    keep = (torch.rand(x.shape[0], *([1] * (x.dim() - 1))) >= p).to(x.dtype)  # (B, 1, 1)
    return x * keep / (1 - p)


def _mask_shape(x: torch.Tensor, per: str) -> tuple[int, ...]:
    return {"sample": (x.shape[0],) + (1,) * (x.dim() - 1), "batch": (1,) * x.dim(), "element": x.shape}[per]


def _wrong_drop_path(*, per="sample", keep_probability=None, scale=None, at_eval=None):
    """A drop_path with one of the mistakes below, for the catalogue and the tests."""

    def drop_path(x, p, training):
        if not training:
            return x if at_eval is None else x * at_eval(p)
        keep = torch.rand(_mask_shape(x, per)) < (1 - p if keep_probability is None else keep_probability(p))
        return x * keep.to(x.dtype) * (1 / (1 - p) if scale is None else scale(p))

    return drop_path


DROP_PATH_MISTAKES = [
    Mistake(
        "one decision for the whole batch: in each call every sample is dropped or every sample is kept. "
        "Huang et al. (2016) drop a block for a whole mini-batch; DropPath, as ViT training uses it (timm, "
        "vitlib), draws one decision per sample: a mask of shape (B, 1, 1), broadcast over T and D.",
        _wrong_drop_path(per="batch"),
    ),
    Mistake(
        "a separate decision for every element: that is dropout (F.dropout). DropPath keeps or drops a "
        "sample's whole branch output: a mask of shape (B, 1, 1), not (B, T, D).",
        _wrong_drop_path(per="element"),
    ),
    Mistake(
        "the kept samples are not rescaled: divide them by the keep probability 1 - p, so that the "
        "expected output is x and evaluation (no dropping) sees outputs of the same size.",
        _wrong_drop_path(scale=lambda p: 1.0),
    ),
    Mistake(
        "the kept samples are divided by p, the drop probability; divide by the keep probability 1 - p.",
        _wrong_drop_path(scale=lambda p: 1 / p),
    ),
    Mistake(
        "the kept samples are multiplied by 1 - p; divide by it instead: x / (1 - p).",
        _wrong_drop_path(scale=lambda p: 1 - p),
    ),
    Mistake(
        "p is used as the keep probability: about a fraction 1 - p of the samples are dropped. p is the "
        "probability of dropping: keep a sample when a uniform draw is >= p (probability 1 - p).",
        _wrong_drop_path(keep_probability=lambda p: p),
    ),
    Mistake(
        "nothing is dropped in training mode: with training=True each sample's output must be all zeros "
        "with probability p.",
        lambda x, p, training: x,
    ),
    Mistake(
        "at evaluation (training=False) drop_path must return x unchanged: no dropping and no rescaling.",
        lambda x, p, training: _drop_path(x, p, True),
    ),
    Mistake(
        "at evaluation the output is x (1 - p), the test-time rule of Huang et al. (2016) and of the first "
        "dropout paper. With kept samples divided by 1 - p during training, evaluation is the identity.",
        _wrong_drop_path(at_eval=lambda p: 1 - p),
    ),
]
_DROP = {name: mistake.description for name, mistake in zip(
    ["batch", "element", "no_rescale", "by_p", "times_keep", "keep_p", "never", "eval", "eval_scaled"],
    DROP_PATH_MISTAKES,
    strict=True,
)}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class _DropCase:
    description: str
    shape: tuple[int, ...]
    p: float
    training: bool
    calls: int


def _close(actual: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    """Elementwise: equal up to the float32 rounding of the two or three operations involved."""
    return (actual - wanted).abs() <= 1e-6 * wanted.abs() + 1e-7


def _pattern(outputs: torch.Tensor, x: torch.Tensor, scale: float) -> str | None:
    """How ``outputs`` (R, B, ...) relate to x: each element 0 or x * scale, by whole samples or not."""
    zero = outputs == 0
    kept = _close(outputs, x * scale)
    if not bool((zero | kept).all()):
        return None
    per_sample = zero.flatten(2).all(-1) | kept.flatten(2).all(-1)  # (R, B)
    return "sample" if bool(per_sample.all()) else "element"


def _diagnose_training(outputs: torch.Tensor, x: torch.Tensor, p: float) -> tuple[str, str | None] | None:
    """None when ``outputs`` (R, B, ...) look like per-sample DropPath; else (problem, mistake key)."""
    scales = {"right": 1 / (1 - p), "no_rescale": 1.0, "times_keep": 1 - p}
    if p > 0:
        scales["by_p"] = 1 / p
    for name, scale in scales.items():
        pattern = _pattern(outputs, x, scale)
        if pattern == "element":
            return "some samples are partly zero and partly kept.", "element"
        if pattern == "sample" and name != "right":
            if name == "no_rescale" and bool((outputs != 0).flatten(1).all()):
                break  # nothing dropped at all: diagnosed below
            return f"the kept samples are x times {scale:.4g}, not x / (1 - p) = x times {1 / (1 - p):.4g}.", name
        if pattern == "sample":
            break
    else:
        kept = _close(outputs, x / (1 - p)).flatten(2).all(-1)
        zero = (outputs == 0).flatten(2).all(-1)
        odd = (~(kept | zero)).nonzero()[0].tolist()
        largest = (outputs[odd[0], odd[1]] - x[odd[1]] / (1 - p)).abs().max().item()
        return (
            f"in call {odd[0] + 1}, sample {odd[1]} is neither all zeros nor x / (1 - p) "
            f"(largest difference from x / (1 - p): {largest:.3g}).",
            None,
        )
    dropped = (outputs == 0).flatten(2).all(-1)  # (R, B)
    calls, batch = dropped.shape
    fraction = dropped.float().mean().item()
    if fraction == 0.0:
        return "no sample was ever dropped.", "never"
    if p > 0 and bool(((dropped.sum(1) == 0) | (dropped.sum(1) == batch)).all()):
        return f"in each of the {calls} calls, the {batch} samples were all dropped or all kept together.", "batch"
    spread = 6 * math.sqrt(p * (1 - p) / dropped.numel()) + 1e-9  # six standard deviations of a binomial
    if abs(fraction - p) > spread:
        key = "keep_p" if abs(fraction - (1 - p)) <= spread else None
        return f"{fraction:.1%} of the samples were dropped over {calls} calls; expected about p = {p:.0%}.", key
    return None


def _run_drop_case(function, case: _DropCase, seed: int):
    """Call ``function`` case.calls times on one x: (x, stacked outputs) or (x, problem string)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(case.shape, generator=generator) + 0.5  # no exact zeros, almost surely
    outputs = []
    with torch.random.fork_rng(devices=[]):  # the reader's random numbers, seeded, without side effects
        torch.manual_seed(seed)
        for _ in range(case.calls):
            (given,) = clone_args((x,))
            out = function(given, case.p, case.training)
            if _changed_inputs((x,), (given,)):
                return x, "changed"
            if not isinstance(out, torch.Tensor):
                return x, f"expected a tensor of shape {tuple(x.shape)}, got {_kind(out)}"
            if out.shape != x.shape:
                return x, f"expected shape {tuple(x.shape)}, got shape {tuple(out.shape)}"
            outputs.append(out.detach().to(torch.float32))
    return x, torch.stack(outputs)  # (R, B, ...)


def check_drop_path(function) -> Verdict:
    """Check ``function(x, p, training)``: stochastic depth on a residual branch's output x (B, T, D).

    With ``training`` each sample (each index of the first axis) is dropped, all zeros, with
    probability p, and kept, divided by 1 - p, otherwise; without ``training`` x is returned
    unchanged. A random function cannot be compared value by value: the checker calls yours many
    times, seeded, and checks that every sample is all zeros or exactly x / (1 - p), that about a
    fraction p is dropped, one decision per sample, and that evaluation is the identity.
    """
    if not callable(function):
        raise TypeError(f"check_drop_path expects your function itself, got {_kind(function)}")
    exercise = "drop_path"
    cases = [
        _DropCase("x (64, 5, 8), p = 0.25, training, 40 calls", (64, 5, 8), 0.25, True, 40),
        _DropCase("x (32, 17, 16), p = 0.1, training, 40 calls", (32, 17, 16), 0.1, True, 40),
        _DropCase("x (8, 17, 16), p = 0.25, evaluation", (8, 17, 16), 0.25, False, 1),
        _DropCase("x (4, 17, 16), p = 0, training", (4, 17, 16), 0.0, True, 3),
    ]
    for number, case in enumerate(cases, start=1):
        where = f"case {number} of {len(cases)} ({case.description})"
        try:
            x, outputs = _run_drop_case(function, case, seed=number)
        except NotImplementedError:
            return _finish(exercise, False, f"✗ {exercise}: not written yet (it raised NotImplementedError).", True)
        except Exception as error:  # the reader's bug, reported with the input that caused it
            report = f"✗ {exercise}: your function raised an error on {where}:\n{_readers_traceback(error)}"
            return _finish(exercise, False, report, True)
        if isinstance(outputs, str):
            if outputs == "changed":
                report = (
                    f"✗ {exercise}: on {where} your function changed x in place (an in-place operation "
                    "such as `x *= ...` or `x.mul_(...)`); return a new tensor instead."
                )
                return _finish(exercise, False, report, True)
            return _finish(exercise, False, f"✗ {exercise}: wrong on {where}.\n  {outputs}", True)
        diagnosis = _diagnose(outputs, x, case)
        if diagnosis is not None:
            problem, key = diagnosis
            report = f"✗ {exercise}: wrong on {where}.\n  {problem}"
            mistake = _DROP.get(key) if key else None
            if mistake:
                report += f"\n  Likely mistake: {mistake}"
            return _finish(exercise, False, report, True, mistake)
    tried = "\n".join(f"  - {case.description}" for case in cases)
    return _finish(exercise, True, f"✓ {exercise}: correct on all {len(cases)} cases:\n{tried}", True)


def _diagnose(outputs: torch.Tensor, x: torch.Tensor, case: _DropCase) -> tuple[str, str | None] | None:
    if not bool(torch.isfinite(outputs).all()):
        key = "by_p" if case.p == 0.0 else None
        return "the output holds inf or NaN values.", key
    if case.training and case.p > 0:
        return _diagnose_training(outputs, x, case.p)
    if bool(_close(outputs, x.expand_as(outputs)).all()):
        return None
    if not case.training:
        if bool(_close(outputs, (x * (1 - case.p)).expand_as(outputs)).all()):
            return f"with training=False the output is x times {1 - case.p:g}, not x.", "eval_scaled"
        return "with training=False the output is not x.", "eval"
    return "with p = 0 nothing may be dropped or rescaled: the output must be x.", None


# --- The post-norm block --------------------------------------------------------------------------


def _post_norm(x: torch.Tensor, block: Block) -> torch.Tensor:
    """The reference: vitlib's post-norm block with ``block``'s weights."""
    reference = Block(
        block.norm1.normalized_shape[0],
        heads=block.attn.heads,
        mlp_dim=block.mlp.fc1.out_features,
        norm_first=False,
    ).eval()
    reference.load_state_dict(block.state_dict())
    return reference(x)


def _pre_norm(x, blk):
    x = x + blk.attn(blk.norm1(x))
    return x + blk.mlp(blk.norm2(x))


def _norm_on_branch(x, blk):
    x = x + blk.norm1(blk.attn(x))
    return x + blk.norm2(blk.mlp(x))


def _norm1_twice(x, blk):
    x = blk.norm1(x + blk.attn(x))
    return blk.norm1(x + blk.mlp(x))


def _norms_swapped(x, blk):
    x = blk.norm2(x + blk.attn(x))
    return blk.norm1(x + blk.mlp(x))


def _no_attention_residual(x, blk):
    x = blk.norm1(blk.attn(x))
    return blk.norm2(x + blk.mlp(x))


def _no_mlp_residual(x, blk):
    x = blk.norm1(x + blk.attn(x))
    return blk.norm2(blk.mlp(x))


def _mlp_residual_from_input(x, blk):
    z = blk.norm1(x + blk.attn(x))
    return blk.norm2(x + blk.mlp(z))


def _normalized_before_adding(x, blk):
    x = blk.norm1(x)
    x = x + blk.attn(x)
    x = blk.norm2(x)
    return x + blk.mlp(x)


def _no_first_norm(x, blk):
    x = x + blk.attn(x)
    return blk.norm2(x + blk.mlp(x))


POST_NORM_MISTAKES = [
    Mistake(
        "this is the pre-norm block of Eq. 2-3, x + sublayer(norm(x)); post-norm normalizes after the "
        "residual addition: z' = LN(z + MSA(z)), then LN(z' + MLP(z')).",
        _pre_norm,
    ),
    Mistake(
        "the norm is applied to the sub-layer's output only, x + norm(sublayer(x)); post-norm normalizes "
        "the sum: norm(x + sublayer(x)).",
        _norm_on_branch,
    ),
    Mistake("norm1 is used after the MLP too; the second addition is normalized by norm2.", _norm1_twice),
    Mistake("norm1 and norm2 are swapped: norm1 follows the attention, norm2 the MLP.", _norms_swapped),
    Mistake(
        "the residual around the attention is missing: z' = LN(z + MSA(z)), with the z.",
        _no_attention_residual,
    ),
    Mistake("the residual around the MLP is missing: LN(z' + MLP(z')), with the z'.", _no_mlp_residual),
    Mistake(
        "the MLP's residual adds the block's input z instead of z', the attention sub-layer's output: "
        "LN(z' + MLP(z')).",
        _mlp_residual_from_input,
    ),
    Mistake(
        "each sub-layer's input is normalized and then added back, norm(x) + sublayer(norm(x)): in "
        "post-norm the LayerNorm comes after the addition, norm(x + sublayer(x)).",
        _normalized_before_adding,
    ),
    Mistake("norm1 is missing: the attention's sum must be normalized too, z' = LN(z + MSA(z)).", _no_first_norm),
]


def _random_block(dim: int, heads: int, mlp_dim: int, seed: int) -> Block:
    """A (pre-norm) block in eval mode with random LayerNorm weights, so that every wrong wiring shows."""
    torch.manual_seed(seed)
    block = Block(dim, heads=heads, mlp_dim=mlp_dim).eval()
    for norm in (block.norm1, block.norm2):
        nn.init.uniform_(norm.weight, 0.5, 1.5)
        nn.init.normal_(norm.bias, std=0.5)
    return block


def check_post_norm_block(function) -> Verdict:
    """Check ``function(x, block)``: the post-norm block (the original Transformer's) from ``block``'s parts.

    z' = LN_1(z + MSA(z)), then LN_2(z' + MLP(z')), with ``block.norm1``, ``block.attn``,
    ``block.norm2`` and ``block.mlp`` of a `vitlib.Block`; x is (B, T, D) and the result too. The
    reference is ``vitlib.Block(norm_first=False)`` with the same weights, which equals
    ``nn.TransformerEncoderLayer(norm_first=False)``.
    """
    generator = torch.Generator().manual_seed(0)
    cases = []
    with torch.random.fork_rng(devices=[]):
        for seed, (b, t, d, heads, mlp_dim) in enumerate([(2, 5, 16, 2, 32), (1, 17, 64, 4, 128), (3, 7, 8, 1, 8)]):
            block = _random_block(d, heads, mlp_dim, seed)
            x = 2 * torch.randn(b, t, d, generator=generator)
            cases.append(Case(f"x ({b}, {t}, {d}), {heads} head{'s' * (heads != 1)}, MLP width {mlp_dim}", (x, block)))
    # float32: a LayerNorm's output is off by a few units of 1e-7 times its size (here up to ~5)
    return check("post_norm_block", function, _post_norm, cases, POST_NORM_MISTAKES, atol=1e-5, rtol=1e-5)


# --- The parameter count --------------------------------------------------------------------------


def _count(config: ViTConfig, leave_out=lambda name: False) -> int:
    """Parameters of ``VisionTransformer(config)``, without those whose names ``leave_out`` selects."""
    with torch.device("meta"):  # shapes only: no memory, no time
        model = VisionTransformer(config)
    return sum(p.numel() for name, p in model.named_parameters() if not leave_out(name))


def _is_layer_norm(name: str) -> bool:  # "norm.weight", "blocks.3.norm1.bias", ...
    return name.startswith("norm") or ".norm" in name


def _tokens(config: ViTConfig) -> int:  # T
    return config.num_patches + (config.pool == "cls")


def _learned_2d(config: ViTConfig) -> int:  # (gh + gw) D / 2
    grid = config.image_size // config.patch_size
    return 2 * grid * config.dim // 2 if config.pos_embed == "learned_2d" else 0


PARAMETER_MISTAKES = [
    Mistake(
        "the LayerNorm parameters are missing: 2 D per LayerNorm, two per block and, with norm_first=True, "
        "one at the end.",
        lambda c: _count(c, _is_layer_norm),
    ),
    Mistake(
        "the final LayerNorm (after the last block, before the head: 2 D) is missing.",
        lambda c: _count(c, lambda name: name.startswith("norm.")),
    ),
    Mistake(
        "a final LayerNorm is counted for norm_first=False: a post-norm stack already ends in a LayerNorm "
        "(its last norm2), so the model has no other one (model.norm is nn.Identity()).",
        lambda c: _count(c) + 2 * c.dim * (not c.norm_first),
    ),
    Mistake(
        "the biases are missing: every nn.Linear has out_features of them (the qkv layer only when "
        "qkv_bias=True), and the patch embedding D.",
        lambda c: _count(c, lambda name: name.endswith("bias") and not _is_layer_norm(name)),
    ),
    Mistake(
        "D parameters are missing: the class token (D), or its row of the position embeddings "
        "(with a class token they have N + 1 rows, not N).",
        lambda c: _count(c, lambda name: name == "cls_token"),
    ),
    Mistake(
        "with pool='mean' there is no class token, and no position embedding for it: N rows, not N + 1.",
        lambda c: _count(c) + (c.dim + c.dim * (c.pos_embed == "learned") if c.pool == "mean" else 0),
    ),
    Mistake(
        "pos_embed='none' is counted as a learned table: without position embeddings there are no "
        "T x D parameters for them.",
        lambda c: _count(c) + _tokens(c) * c.dim * (c.pos_embed == "none"),
    ),
    Mistake(
        "position embeddings are counted although they are not learned: pos_embed='sincos' is a fixed "
        "buffer and 'none' has none, so they add no parameters.",
        lambda c: _count(c) + _tokens(c) * c.dim * (c.pos_embed in ("sincos", "none")),
    ),
    Mistake(
        "pos_embed='learned_2d' is counted as a full table, one D-vector per token; it holds only a row "
        "table (gh, D/2) and a column table (gw, D/2): (gh + gw) D / 2 parameters.",
        lambda c: _count(c) + (_tokens(c) * c.dim - _learned_2d(c)) * (c.pos_embed == "learned_2d"),
    ),
    Mistake(
        "pos_embed='learned_2d' is counted as one D/2-vector per patch row and column plus a position for "
        "the class token; the class token gets no position there: (gh + gw) D / 2 parameters.",
        lambda c: _count(c) + c.dim * (c.pos_embed == "learned_2d" and c.pool == "cls"),
    ),
    Mistake(
        "the classification head (D K weights + K biases) is missing.",
        lambda c: _count(c, lambda name: name.startswith("head.")),
    ),
]


def check_parameter_count(function) -> Verdict:
    """Check ``function(config)`` -> the number of parameters of ``VisionTransformer(config)``, by formula."""
    mnist = PRESETS["mnist"]
    configs = {
        "the mnist preset": mnist,
        "mnist, 7x7 patches, MLP width 100": dataclasses.replace(mnist, patch_size=7, mlp_dim=100),
        "mnist with pool='mean'": dataclasses.replace(mnist, pool="mean"),
        "mnist with pos_embed='sincos'": dataclasses.replace(mnist, pos_embed="sincos"),
        "mnist with pos_embed='none'": dataclasses.replace(mnist, pos_embed="none"),
        "mnist with norm_first=False (post-norm)": dataclasses.replace(mnist, norm_first=False),
        "mnist with pos_embed='learned_2d'": dataclasses.replace(mnist, pos_embed="learned_2d"),
        "mnist with pos_embed='learned_2d', pool='mean'": dataclasses.replace(
            mnist, pos_embed="learned_2d", pool="mean"
        ),
        "mnist without qkv biases, 3 channels, 32x32": dataclasses.replace(
            mnist, qkv_bias=False, in_chans=3, image_size=32
        ),
        "ViT-B/16": PRESETS["vit_b_16"],
    }
    cases = [Case(name, (config,)) for name, config in configs.items()]
    return check("parameter_count", function, _count, cases, PARAMETER_MISTAKES)

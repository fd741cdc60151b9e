"""HAT: Hybrid Attention Transformer for image super-resolution.

Chen et al., "Activating More Pixels in Image Super-Resolution Transformer", CVPR 2023.

The network, top-down as in the paper:

* shallow feature extraction: one 3x3 conv;
* deep feature extraction: residual hybrid attention groups (:class:`RHAG`), each a stack of hybrid attention
  blocks (:class:`HAB`: shifted-window self-attention plus a channel-attention conv branch, :class:`CAB`) closed by
  one overlapping cross-attention block (:class:`OCAB`) and a conv;
* reconstruction: pixel-shuffle (or another upsampler).

Parameter and buffer names are those of the reference implementation, so released checkpoints load with
``strict=True``. Attention runs through ``scaled_dot_product_attention`` (``attn_impl='sdpa'``) or through an explicit
matmul + softmax (``attn_impl='naive'``: the reference's algorithm, memory layouts and arithmetic, which tests and
benchmarks compare against and which ONNX export traces: a forward traced by ``torch.onnx.export`` takes it whatever
``attn_impl`` says). :meth:`HAT.set_attn_impl` switches a built model, and the blocks read the path from the
:class:`~hat_arch.layers.context.BlockContext` of each forward. Two data flows per block, because the sdpa path's
window gathers and custom autograd functions are what make it fast and what the ONNX exporter cannot trace. The
kernels and window bookkeeping are in :mod:`hat_arch.layers`; the settings are a
:class:`~hat_arch.archs.config.HATConfig`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from hat_arch.archs.config import HATConfig
from hat_arch.archs.registry import ARCH_REGISTRY
from hat_arch.layers.attention import naive_attention, sdpa_attention
from hat_arch.layers.context import BlockContext, block_context, forward_attn_impl
from hat_arch.layers.drop_path import drop_path as drop_path_layer
from hat_arch.layers.head_padding import head_padded
from hat_arch.layers.init import trunc_normal_
from hat_arch.layers.memory_format import conv_input
from hat_arch.layers.mlp import Mlp
from hat_arch.layers.padding import reflect_pad_to_multiple
from hat_arch.layers.windows import (OverlappingWindows, WindowOrder, relative_position_bias,
                                     relative_position_index_oca, relative_position_index_sa, shift_region_masks,
                                     window_partition, window_reverse)
from hat_arch.state_dict import POSITION_INDEX_KEYS, StateDictMismatch, describe_state_dict_mismatch

NUM_FEAT = 64  # width of the reconstruction convs (fixed, as in the reference)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention: (b, c, h, w) -> (b, c, h, w)."""

    def __init__(self, num_feat: int, squeeze_factor: int = 16):
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(num_feat, num_feat // squeeze_factor, 1, padding=0),
            nn.ReLU(inplace=True),
            nn.Conv2d(num_feat // squeeze_factor, num_feat, 1, padding=0),
            nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class CAB(nn.Module):
    """Channel attention block, the conv branch of a HAB: (b, c, h, w) -> (b, c, h, w)."""

    def __init__(self, num_feat: int, compress_ratio: int = 3, squeeze_factor: int = 30):
        super().__init__()
        self.cab = nn.Sequential(
            nn.Conv2d(num_feat, num_feat // compress_ratio, 3, 1, 1),
            nn.GELU(),
            nn.Conv2d(num_feat // compress_ratio, num_feat, 3, 1, 1),
            ChannelAttention(num_feat, squeeze_factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cab(x)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside (cyclically shifted) windows, with a relative position bias.

    Normalized image tokens (b, h, w, c) -> attention output (b, h*w, c), in image order; h and w are multiples of
    the window size. Shifted windows across the wrap-around attend only within their regions, as in the reference.
    """

    def __init__(self, dim: int, window_size: tuple[int, int], num_heads: int, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads)**-0.5
        self.attn_drop = attn_drop
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size[0] - 1) * (2 * window_size[1] - 1), num_heads))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        trunc_normal_(self.relative_position_bias_table, std=.02)

    def forward(self, x: torch.Tensor, shift: int, ctx: BlockContext) -> torch.Tensor:
        bias = relative_position_bias(self.relative_position_bias_table, ctx.rpi_sa)  # heads, n, n
        dropout_p = self.attn_drop if self.training else 0.0
        if ctx.naive:
            out = self.forward_naive(x, shift, bias, ctx.shift_mask if shift else None, dropout_p)
        else:
            out = self.forward_sdpa(x, ctx.shifted_windows if shift else ctx.windows, bias, ctx.region_masks,
                                     dropout_p)
        return self.proj_drop(out)

    def forward_sdpa(self, x: torch.Tensor, order: WindowOrder, bias: torch.Tensor, region_masks: torch.Tensor,
                      dropout_p: float) -> torch.Tensor:
        """Project, gather the windows with one index, attend per group of windows sharing a mask, scatter back."""
        b, h, w, c = x.shape
        n, heads = bias.shape[-1], self.num_heads
        padded = head_padded(self.qkv, self.proj, c // heads)
        tokens = x.reshape(b * h * w, c)
        if torch.is_grad_enabled():  # project, then gather: the linear keeps the input it shares with the conv branch
            qkv = order.gather(padded.qkv(tokens))
        else:  # gather, then project: a third of the copying
            qkv = padded.qkv(order.gather(tokens))
        qkv = qkv.view(-1, n, 3, heads, padded.width)
        regions = [region for region, _ in order.groups]
        if regions[0] is None:
            biases = bias.unsqueeze(0)
        else:
            biases = bias + region_masks[[r for r, _ in regions], [col for _, col in regions]].unsqueeze(1)
        q, k, v = qkv.unbind(2)  # each (nW*b, n, heads, d)
        out = sdpa_attention(q, k, v, biases, [count for _, count in order.groups], self.scale, dropout_p)
        return order.scatter(padded.proj(out.reshape(-1, heads * padded.width))).view(b, h * w, c)

    def forward_naive(self, x: torch.Tensor, shift: int, bias: torch.Tensor, shift_mask: torch.Tensor | None,
                          dropout_p: float) -> torch.Tensor:
        """The reference data flow: roll, partition, full attention matrices with the per-window mask, and back."""
        b, h, w, c = x.shape
        ws, heads = self.window_size[0], self.num_heads
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        windows = window_partition(x, ws).reshape(-1, ws * ws, c)
        b_, n, _ = windows.shape
        q, k, v = self.qkv(windows).reshape(b_, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1) + bias.unsqueeze(0)
        if shift_mask is not None:
            nw = shift_mask.shape[0]
            attn = (attn.view(b_ // nw, nw, heads, n, n) + shift_mask.unsqueeze(1).unsqueeze(0)).view(-1, heads, n, n)
        attn = attn.softmax(dim=-1)
        if dropout_p > 0:
            attn = F.dropout(attn, p=dropout_p)
        windows = self.proj((attn @ v).transpose(1, 2).reshape(b_, n, c))
        x = window_reverse(windows.view(b, h // ws, w // ws, n, c), ws)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        return x.reshape(b, h * w, c)


class HAB(nn.Module):
    """Hybrid attention block: (shifted) window self-attention + scaled CAB branch, then an MLP.

    Tokens (b, h*w, c) -> (b, h*w, c); h and w are multiples of the window size.
    """

    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int, window_size: int = 7,
                 shift_size: int = 0, compress_ratio: int = 3, squeeze_factor: int = 30, conv_scale: float = 0.01,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, act_layer: type[nn.Module] = nn.GELU,
                 norm_layer: type[nn.Module] = nn.LayerNorm):
        super().__init__()
        self.window_size = window_size
        # As in the reference: a training size no larger than one window gets no shift.
        self.shift_size = 0 if min(input_resolution) <= window_size else shift_size
        self.conv_scale = conv_scale
        self.norm1 = norm_layer(dim)
        self.attn = WindowAttention(dim, (window_size, window_size), num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.conv_block = CAB(dim, compress_ratio, squeeze_factor)
        self.drop_path = drop_path_layer(drop_path)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer, drop)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], ctx: BlockContext) -> torch.Tensor:
        h, w = x_size
        b, _, c = x.shape
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        # (b, h, w, c) permuted is a channels_last (b, c, h, w): the convs run on it without copies.
        conv_x = self.conv_block(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(b, h * w, c)
        attn_x = self.attn(x, self.shift_size, ctx)
        if ctx.naive:  # the reference's arithmetic
            x = shortcut + self.drop_path(attn_x) + conv_x * self.conv_scale
            return x + self.drop_path(self.mlp(self.norm2(x)))
        # The same sums with one pass fewer: in place only on a tensor made here, never on a submodule's output
        # (forward hooks keep it; a backward hook's view of it must not change).
        x = torch.add(shortcut, self.drop_path(attn_x)).add_(conv_x, alpha=self.conv_scale)
        return x + self.drop_path(self.mlp(self.norm2(x), recompute_gelu=True))


class OCAB(nn.Module):
    """Overlapping cross-attention block: window queries attend to larger, overlapping key/value windows.

    Tokens (b, h*w, c) -> (b, h*w, c). Keys and values outside the image are zeros, as in the reference.
    """

    def __init__(self, dim: int, input_resolution: tuple[int, int], window_size: int, overlap_ratio: float,
                 num_heads: int, qkv_bias: bool = True, qk_scale: float | None = None, mlp_ratio: float = 2,
                 norm_layer: type[nn.Module] = nn.LayerNorm):
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads)**-0.5
        self.overlap_win_size = int(window_size * overlap_ratio) + window_size
        self.norm1 = norm_layer(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((window_size + self.overlap_win_size - 1)**2, num_heads))
        trunc_normal_(self.relative_position_bias_table, std=.02)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], ctx: BlockContext) -> torch.Tensor:
        h, w = x_size
        b, _, c = x.shape
        bias = relative_position_bias(self.relative_position_bias_table, ctx.rpi_oca)  # heads, n, m
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        if ctx.naive:
            x = self.proj(self.attend_naive(x, bias)) + shortcut
            return x + self.mlp(self.norm2(x))
        x = self.attend_sdpa(x, ctx.windows, bias).add_(shortcut)  # in place: the scatter's output, made here
        return x + self.mlp(self.norm2(x), recompute_gelu=True)

    def attend_sdpa(self, x: torch.Tensor, order: WindowOrder, bias: torch.Tensor) -> torch.Tensor:
        """(b, h, w, c) -> projected attention output (b, h*w, c): queries gathered into windows; keys and values
        cut into overlapping windows with one copy."""
        b, h, w, c = x.shape
        ws, ows, heads = self.window_size, self.overlap_win_size, self.num_heads
        padded = head_padded(self.qkv, self.proj, c // heads)
        width = heads * padded.width  # of q, k, v and the attention output
        qkv = padded.qkv(x)  # b, h, w, 3 * width
        q = order.gather(qkv.view(-1, 3 * width)[:, :width]).view(-1, ws * ws, heads, padded.width)
        kv = OverlappingWindows.apply(qkv[..., width:], ws, ows)  # windows in the order of `order` (unshifted)
        k, v = kv.view(-1, ows * ows, 2, heads, padded.width).unbind(2)
        out = sdpa_attention(q, k, v, bias.unsqueeze(0), [q.shape[0]], self.scale)
        return order.scatter(padded.proj(out.reshape(-1, width))).view(b, h * w, c)

    def attend_naive(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """(b, h, w, c) -> (b, h*w, c), the reference data flow: ``nn.Unfold`` key/value windows, full attention."""
        b, h, w, c = x.shape
        ws, ows, heads = self.window_size, self.overlap_win_size, self.num_heads
        qkv = self.qkv(x).reshape(b, h, w, 3, c).permute(3, 0, 4, 1, 2)  # 3, b, c, h, w
        q = window_partition(qkv[0].permute(0, 2, 3, 1), ws).reshape(-1, ws * ws, c)
        kv = F.unfold(torch.cat((qkv[1], qkv[2]), dim=1), kernel_size=ows, stride=ws, padding=(ows - ws) // 2)
        k, v = rearrange(kv, 'b (two c oh ow) nw -> two (b nw) (oh ow) c', two=2, c=c, oh=ows, ow=ows).contiguous()
        split = lambda t: t.reshape(t.shape[0], t.shape[1], heads, c // heads).permute(0, 2, 1, 3)
        out = naive_attention(split(q), split(k), split(v), bias.unsqueeze(0), self.scale)
        out = out.transpose(1, 2).reshape(b, h // ws, w // ws, ws * ws, c)
        return window_reverse(out, ws).reshape(b, h * w, c)


class AttenBlocks(nn.Module):
    """The blocks of one RHAG: ``depth`` HABs, alternately unshifted and shifted, then one OCAB.

    Tokens (b, h*w, c) -> (b, h*w, c).
    """

    def __init__(self, dim: int, input_resolution: tuple[int, int], depth: int, num_heads: int, window_size: int,
                 compress_ratio: int, squeeze_factor: int, conv_scale: float, overlap_ratio: float,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float | Sequence[float] = 0.0,
                 norm_layer: type[nn.Module] = nn.LayerNorm, use_checkpoint: bool = False):
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList([
            HAB(dim=dim, input_resolution=input_resolution, num_heads=num_heads, window_size=window_size,
                shift_size=0 if i % 2 == 0 else window_size // 2, compress_ratio=compress_ratio,
                squeeze_factor=squeeze_factor, conv_scale=conv_scale, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                qk_scale=qk_scale, drop=drop, attn_drop=attn_drop,
                drop_path=drop_path[i] if isinstance(drop_path, (list, tuple)) else drop_path, norm_layer=norm_layer)
            for i in range(depth)
        ])
        self.overlap_attn = OCAB(dim=dim, input_resolution=input_resolution, window_size=window_size,
                                 overlap_ratio=overlap_ratio, num_heads=num_heads, qkv_bias=qkv_bias,
                                 qk_scale=qk_scale, mlp_ratio=mlp_ratio, norm_layer=norm_layer)

    def _run(self, block: nn.Module, *args):
        # Recompute activations in the backward pass instead of storing them, when asked to and when it matters.
        if self.use_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], ctx: BlockContext) -> torch.Tensor:
        for block in self.blocks:
            x = self._run(block, x, x_size, ctx)
        return self._run(self.overlap_attn, x, x_size, ctx)


def residual_conv(dim: int, resi_connection: str) -> nn.Module:
    """The conv closing a residual group and the body: one 3x3 conv, a 3-conv bottleneck, or nothing."""
    if resi_connection == '1conv':
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if resi_connection == '3conv':  # cheaper bottleneck (as SwinIR's '3conv')
        return nn.Sequential(
            nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(negative_slope=0.2, inplace=True),
            nn.Conv2d(dim // 4, dim // 4, 1, 1, 0), nn.LeakyReLU(negative_slope=0.2, inplace=True),
            nn.Conv2d(dim // 4, dim, 3, 1, 1))
    return nn.Identity()


class PatchEmbed(nn.Module):
    """Feature map to tokens: (b, c, h, w) -> (b, h*w, c), with an optional norm."""

    def __init__(self, embed_dim: int, norm_layer: type[nn.Module] | None = None):
        super().__init__()
        self.norm = norm_layer(embed_dim) if norm_layer is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)
        return self.norm(x) if self.norm is not None else x


class PatchUnEmbed(nn.Module):
    """Tokens to feature map: (b, h*w, c) -> (b, c, h, w)."""

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], x_size[0], x_size[1])


class RHAG(nn.Module):
    """Residual hybrid attention group: AttenBlocks, a conv, and a residual connection.

    Tokens (b, h*w, c) -> (b, h*w, c).
    """

    def __init__(self, dim: int, input_resolution: tuple[int, int], depth: int, num_heads: int, window_size: int,
                 compress_ratio: int, squeeze_factor: int, conv_scale: float, overlap_ratio: float,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float | Sequence[float] = 0.0,
                 norm_layer: type[nn.Module] = nn.LayerNorm, use_checkpoint: bool = False,
                 resi_connection: str = '1conv'):
        super().__init__()
        self.residual_group = AttenBlocks(
            dim=dim, input_resolution=input_resolution, depth=depth, num_heads=num_heads, window_size=window_size,
            compress_ratio=compress_ratio, squeeze_factor=squeeze_factor, conv_scale=conv_scale,
            overlap_ratio=overlap_ratio, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop,
            attn_drop=attn_drop, drop_path=drop_path, norm_layer=norm_layer, use_checkpoint=use_checkpoint)
        self.conv = residual_conv(dim, resi_connection)
        self.patch_embed = PatchEmbed(dim)
        self.patch_unembed = PatchUnEmbed()

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], ctx: BlockContext) -> torch.Tensor:
        y = self.patch_unembed(self.residual_group(x, x_size, ctx), x_size)
        # x first: the sum takes the token-major layout of x
        return x + self.patch_embed(self.conv(conv_input(y, ctx.naive)))


class Upsample(nn.Sequential):
    """Conv and pixel shuffle by 2 per doubling (or one by 3), as BasicSR's ``Upsample``: the same layers and keys.

    Not imported from ``basicsr.archs.arch_util``: that imports all of BasicSR (seconds), and the network must load
    without it (``hat-sr upscale``).
    """

    def __init__(self, scale: int, num_feat: int):
        if scale & (scale - 1) == 0:
            factors = [2] * (scale.bit_length() - 1)
        elif scale == 3:
            factors = [3]
        else:
            raise ValueError(f'scale {scale} is not supported. Supported scales: 2^n and 3.')
        layers = []
        for factor in factors:
            layers += [nn.Conv2d(num_feat, factor**2 * num_feat, 3, 1, 1), nn.PixelShuffle(factor)]
        super().__init__(*layers)


class UpsampleOneStep(nn.Sequential):
    """One conv and one pixel shuffle, straight to the output channels (lightweight models)."""

    def __init__(self, scale: int, num_feat: int, num_out_ch: int):
        super().__init__(nn.Conv2d(num_feat, scale**2 * num_out_ch, 3, 1, 1), nn.PixelShuffle(scale))


_DEFAULT = HATConfig()


@ARCH_REGISTRY.register()
class HAT(nn.Module):
    r"""Hybrid Attention Transformer.

    Image (b, in_chans, h, w), any h and w -> (b, in_chans, h*upscale, w*upscale). The input is reflect-padded on the
    bottom and right to a multiple of ``window_size`` and the output cropped back.

    Args:
        img_size: training patch size; only decides (as in the reference) that a patch no larger than one window
            gets no shifted windows.
        patch_size: must be 1 (HAT embeds pixels).
        in_chans: image channels in and out.
        embed_dim: feature width.
        depths: HABs per residual group.
        num_heads: attention heads per residual group.
        window_size: self-attention window side.
        compress_ratio: CAB channel compression.
        squeeze_factor: channel-attention squeeze.
        conv_scale: weight of the CAB branch.
        overlap_ratio: how much larger the OCAB key/value windows are.
        mlp_ratio: MLP hidden width / embed_dim.
        upscale: scale factor.
        img_range: pixel range the network works in (1 or 255).
        upsampler: 'pixelshuffle', 'pixelshuffledirect', 'nearest+conv' (x4) or '' (scale 1, global residual).
        resi_connection: '1conv', '3conv' or 'identity'.
        use_checkpoint: recompute block activations in backward to save memory in training.
        attn_impl: 'sdpa' (fused kernels) or 'naive' (explicit matmul + softmax: the reference's algorithm, layouts and
            arithmetic); :meth:`set_attn_impl` changes it on a built model.

    The arguments but ``norm_layer`` are checked once as a :class:`~hat_arch.archs.config.HATConfig` (kept as
    ``config``), whose defaults these are: a small x2 HAT (the reference's, with the window of 16 and the pixel-shuffle
    upsampler of every released model: its window of 7 and its scale-1 upsampler with ``upscale=2`` do not build).
    The released configurations are named: :func:`hat_arch.list_models`, :func:`hat_arch.create_model`.
    """

    def __init__(self,
                 img_size: int | tuple[int, int] = _DEFAULT.img_size,
                 patch_size: int = _DEFAULT.patch_size,
                 in_chans: int = _DEFAULT.in_chans,
                 embed_dim: int = _DEFAULT.embed_dim,
                 depths: Sequence[int] = _DEFAULT.depths,
                 num_heads: Sequence[int] = _DEFAULT.num_heads,
                 window_size: int = _DEFAULT.window_size,
                 compress_ratio: int = _DEFAULT.compress_ratio,
                 squeeze_factor: int = _DEFAULT.squeeze_factor,
                 conv_scale: float = _DEFAULT.conv_scale,
                 overlap_ratio: float = _DEFAULT.overlap_ratio,
                 mlp_ratio: float = _DEFAULT.mlp_ratio,
                 qkv_bias: bool = _DEFAULT.qkv_bias,
                 qk_scale: float | None = _DEFAULT.qk_scale,
                 drop_rate: float = _DEFAULT.drop_rate,
                 attn_drop_rate: float = _DEFAULT.attn_drop_rate,
                 drop_path_rate: float = _DEFAULT.drop_path_rate,
                 norm_layer: type[nn.Module] = nn.LayerNorm,
                 patch_norm: bool = _DEFAULT.patch_norm,
                 use_checkpoint: bool = _DEFAULT.use_checkpoint,
                 upscale: int = _DEFAULT.upscale,
                 img_range: float = _DEFAULT.img_range,
                 upsampler: str = _DEFAULT.upsampler,
                 resi_connection: str = _DEFAULT.resi_connection,
                 attn_impl: str = _DEFAULT.attn_impl):
        super().__init__()
        self.config = HATConfig(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim, depths=depths,
            num_heads=num_heads, window_size=window_size, compress_ratio=compress_ratio, squeeze_factor=squeeze_factor,
            conv_scale=conv_scale, overlap_ratio=overlap_ratio, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
            qk_scale=qk_scale, drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate,
            patch_norm=patch_norm, use_checkpoint=use_checkpoint, upscale=upscale, img_range=img_range,
            upsampler=upsampler, resi_connection=resi_connection, attn_impl=attn_impl)
        num_feat = NUM_FEAT
        self.in_chans = in_chans
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.overlap_ratio = overlap_ratio
        self.upscale = upscale
        self.upsampler = upsampler
        self.img_range = img_range
        mean = (0.4488, 0.4371, 0.4040) if in_chans == 3 else (0.0, ) * in_chans
        self.register_buffer('mean', torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)

        overlap_win_size = int(window_size * overlap_ratio) + window_size
        self.register_buffer('relative_position_index_SA', relative_position_index_sa(window_size))
        self.register_buffer('relative_position_index_OCA', relative_position_index_oca(window_size, overlap_win_size))
        self.register_buffer('region_masks', shift_region_masks(window_size, self.shift_size), persistent=False)

        # 1. shallow feature extraction
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)

        # 2. deep feature extraction
        self.patch_embed = PatchEmbed(embed_dim, norm_layer if patch_norm else None)
        self.patch_unembed = PatchUnEmbed()
        self.pos_drop = nn.Dropout(p=drop_rate)
        input_resolution = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        # stochastic depth, rising with depth
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            self.layers.append(
                RHAG(dim=embed_dim, input_resolution=input_resolution, depth=depth, num_heads=heads,
                     window_size=window_size, compress_ratio=compress_ratio, squeeze_factor=squeeze_factor,
                     conv_scale=conv_scale, overlap_ratio=overlap_ratio, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                     qk_scale=qk_scale, drop=drop_rate, attn_drop=attn_drop_rate,
                     drop_path=dpr[sum(depths[:i]):sum(depths[:i + 1])], norm_layer=norm_layer,
                     use_checkpoint=use_checkpoint, resi_connection=resi_connection))
        self.norm = norm_layer(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection)

        # 3. reconstruction
        if upsampler in ('pixelshuffle', 'nearest+conv'):
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1),
                                                      nn.LeakyReLU(inplace=True))
        if upsampler == 'pixelshuffle':
            self.upsample = Upsample(upscale, num_feat)
            self.conv_last = nn.Conv2d(num_feat, in_chans, 3, 1, 1)
        elif upsampler == 'pixelshuffledirect':
            self.upsample = UpsampleOneStep(upscale, embed_dim, in_chans)
        elif upsampler == 'nearest+conv':
            self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_last = nn.Conv2d(num_feat, in_chans, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        else:
            self.conv_last = nn.Conv2d(embed_dim, in_chans, 3, 1, 1)

        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    @classmethod
    def from_config(cls, config: HATConfig, norm_layer: type[nn.Module] = nn.LayerNorm) -> HAT:
        """The network of ``config``."""
        return cls(**config.as_kwargs(), norm_layer=norm_layer)

    @property
    def attn_impl(self) -> str:
        """'sdpa' or 'naive': the attention path of a forward (but under ``torch.onnx.export``, always 'naive')."""
        return self.config.attn_impl

    def set_attn_impl(self, attn_impl: str) -> None:
        """Switch this model between the fused path ('sdpa') and the reference algorithm ('naive', which also keeps
        the reference's memory layouts and arithmetic); the weights are the same. The blocks read it per forward."""
        self.config = self.config.replace(attn_impl=attn_impl)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As ``nn.Module.load_state_dict``, but a state dict that does not fit fails with a short message naming the
        first missing, unexpected and mis-shaped keys (torch lists every one of them, hundreds for a wrong size).

        The relative position indices are constants of the window sizes: a state dict saved without them (exports,
        pruned checkpoints) gets this network's own.
        """
        missing_indices = [key for key in POSITION_INDEX_KEYS if key not in state_dict]
        if missing_indices:
            state_dict = {**state_dict, **{key: getattr(self, key) for key in missing_indices}}
        if strict:
            problem = describe_state_dict_mismatch(self.state_dict(), state_dict)
            if problem:
                raise StateDictMismatch(problem)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Deep features: (b, embed_dim, h, w) -> (b, embed_dim, h, w); h, w multiples of the window size."""
        x_size = tuple(x.shape[-2:])
        # What the blocks share, made once per forward: the window layouts, or the reference's per-window mask.
        ctx = block_context(forward_attn_impl(self.attn_impl), x.shape, self.window_size, self.shift_size,
                            self.relative_position_index_SA, self.relative_position_index_OCA, self.region_masks)
        x = self.pos_drop(self.patch_embed(x))
        for layer in self.layers:
            x = layer(x, x_size, ctx)
        return self.patch_unembed(self.norm(x), x_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = reflect_pad_to_multiple(x, self.window_size)
        mean = self.mean.to(x.dtype)
        image = (x - mean) * self.img_range
        naive = forward_attn_impl(self.attn_impl) == 'naive'
        x = self.conv_first(conv_input(image, naive))
        features = self.conv_after_body(conv_input(self.forward_features(x), naive)) + x
        if self.upsampler == 'pixelshuffle':
            x = self.conv_last(self.upsample(self.conv_before_upsample(features)))
        elif self.upsampler == 'pixelshuffledirect':
            x = self.upsample(features)
        elif self.upsampler == 'nearest+conv':
            x = self.conv_before_upsample(features)
            x = self.lrelu(self.conv_up1(F.interpolate(x, scale_factor=2, mode='nearest')))
            x = self.lrelu(self.conv_up2(F.interpolate(x, scale_factor=2, mode='nearest')))
            x = self.conv_last(self.lrelu(self.conv_hr(x)))
        else:  # restoration at scale 1: predict a residual on the input
            x = image + self.conv_last(features)
        x = x / self.img_range + mean
        return x[..., :h * self.upscale, :w * self.upscale].contiguous()

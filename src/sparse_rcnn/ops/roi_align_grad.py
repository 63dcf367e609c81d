"""RoIAlign with a vectorized CPU backward: a training speed-up, the same gradient as torchvision's.

torchvision's CPU backward is a serial scalar loop that recomputes the bilinear taps for every
channel (~25 % of a demo-model training step), so ``RoIAlignCPUGrad`` keeps torchvision's forward
and computes the same gradient with tensor ops over all channels.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torchvision.ops import roi_align


def _axis_taps(start: Tensor, bin_size: Tensor, pooled: int, grid: int, size: int):
    """Bilinear taps along one axis as torchvision's CPU ``bilinear_interpolate_gradient``: for
    each roi the (pooled bin, grid sample, low/high corner) taps flattened, (K, pooled*grid*2):
    pixel position, weight (h or l) and whether the sample lies in [-1, size] (else it is dropped)."""
    p = torch.arange(pooled, dtype=start.dtype)
    g = torch.arange(grid, dtype=start.dtype) + 0.5
    coord = (start[:, None] + p * bin_size[:, None])[:, :, None] + (g * bin_size[:, None, None]) / grid
    inside = (coord >= -1.0) & (coord <= size)
    coord = coord.clamp(min=0.0)
    low = coord.long()  # trunc == floor here; garbage (NaN, huge) only where not inside
    edge = low >= size - 1
    low = low.clamp(max=size - 1)
    high = torch.where(edge, low, low + 1)
    frac = torch.where(edge, 0.0, coord - low)
    k = start.shape[0]
    pos, weight = torch.stack([low, high], -1).view(k, -1), torch.stack([1.0 - frac, frac], -1).view(k, -1)
    return pos, weight, inside[..., None].expand(-1, -1, -1, 2).reshape(k, -1)


def _scatter_plan(rois: Tensor, scale: float, out: int, ratio: int, height: int, width: int):
    """Every (roi, bin, sample, corner) tap that gets gradient, as torchvision's CPU ``roi_align``
    backward: the pooled row ``roi*out*out + bin`` it reads, its pixel ``(b*H + y)*W + x`` and its
    weight (hy*hx, hy*lx, ly*hx or ly*lx) / count."""
    scale_t = torch.tensor(scale, dtype=rois.dtype)  # the kernel computes in T, scale included
    corners = rois[:, 1:] * scale_t - 0.5  # aligned=True
    start = corners[:, :2]  # (x, y)
    size = corners[:, 2:] - start  # (w, h)
    bin_w, bin_h = (size / out).unbind(1)
    if ratio > 0:
        groups = [(ratio, ratio, torch.arange(rois.shape[0]))]
    else:  # adaptive grid: ceil(roi_size / pooled) per roi and axis; <= 0 means no samples
        grids = torch.ceil(size / out).long().flip(1)  # (gh, gw)
        groups = [
            (gh, gw, torch.nonzero((grids[:, 0] == gh) & (grids[:, 1] == gw)).squeeze(1))
            for gh, gw in torch.unique(grids, dim=0).tolist()
            if gh > 0 and gw > 0
        ]
    rows, pixels, weights = [], [], []
    for gh, gw, sel in groups:
        ypos, yw, yin = _axis_taps(start[sel, 1], bin_h[sel], out, gh, height)  # (K, Ty)
        xpos, xw, xin = _axis_taps(start[sel, 0], bin_w[sel], out, gw, width)  # (K, Tx)
        batch = rois[sel, 0].long()[:, None]  # (int) truncation, as the kernel
        ph = torch.arange(out).repeat_interleave(gh * 2)  # bin row / column of each y / x tap
        pw = torch.arange(out).repeat_interleave(gw * 2)
        # every y tap with every x tap of the roi: (K, Ty, Tx)
        pix = (((batch * height + ypos) * width)[:, :, None] + xpos[:, None, :]).view(-1)
        w = ((yw / float(gh * gw))[:, :, None] * xw[:, None, :]).view(-1)
        row = (((sel[:, None] * out + ph) * out)[:, :, None] + pw).view(-1)
        if not (bool(yin.all()) and bool(xin.all())):
            keep = (yin[:, :, None] & xin[:, None, :]).view(-1).nonzero().squeeze(1)
            row, pix, w = row[keep], pix[keep], w[keep]
        rows.append(row)
        pixels.append(pix)
        weights.append(w)
    if len(rows) == 1:
        return rows[0], pixels[0], weights[0]
    if not rows:
        return (torch.zeros(0, dtype=torch.long),) * 2 + (torch.zeros(0, dtype=rois.dtype),)
    return torch.cat(rows), torch.cat(pixels), torch.cat(weights)


class RoIAlignCPUGrad(torch.autograd.Function):
    """torchvision's ``roi_align(aligned=True)`` forward; vectorized backward for CPU features.

    Backward: every tap adds ``weight * grad_out[roi, :, ph, pw]`` (a row of C channels) to its
    pixel. The rows are summed per touched pixel into a channels-last (pixel, C) buffer by one
    sparse (pixels x bins) @ dense (bins x C) product, then written into the zero (B, C, H, W)
    gradient. Only touched pixels are transposed: transposing a whole channels-last R-50 P2 map
    back costs more than torchvision's backward. (``index_add_`` does the same sum, but on CPU
    it goes through a sorted scatter and needs the (taps x C) rows materialized: 2-10x slower.)
    """

    @staticmethod
    def forward(ctx, feat: Tensor, rois: Tensor, out: int, scale: float, ratio: int) -> Tensor:
        with torch.no_grad():
            pooled = roi_align(feat, rois, out, spatial_scale=scale, sampling_ratio=ratio, aligned=True)
        ctx.save_for_backward(rois)
        ctx.args = (out, scale, ratio)
        ctx.feat_shape, ctx.feat_dtype = feat.shape, feat.dtype
        channels_last = not feat.is_contiguous() and feat.is_contiguous(memory_format=torch.channels_last)
        ctx.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        return pooled

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        (rois,) = ctx.saved_tensors
        out, scale, ratio = ctx.args
        b, c, h, w = ctx.feat_shape
        grad = torch.empty(ctx.feat_shape, dtype=ctx.feat_dtype, memory_format=ctx.memory_format).zero_()
        if rois.shape[0] == 0 or grad.numel() == 0:
            return grad, None, None, None, None
        acc = torch.float32 if ctx.feat_dtype in (torch.float16, torch.bfloat16) else ctx.feat_dtype
        rows, pixels, weights = _scatter_plan(rois.to(acc), scale, out, ratio, h, w)
        touched = torch.zeros(b * h * w, dtype=torch.bool)
        touched[pixels] = True
        used = touched.nonzero().squeeze(1)  # touched pixels, ascending
        slot = torch.empty(b * h * w, dtype=torch.long)
        slot[used] = torch.arange(used.numel())
        bins = grad_out.to(acc).permute(0, 2, 3, 1).reshape(-1, c)  # (K*out*out, C)
        taps = torch.sparse_coo_tensor(
            torch.stack([slot[pixels], rows]),
            weights,
            (used.numel(), bins.shape[0]),
            check_invariants=False,
        )
        summed = torch.sparse.mm(taps, bins)  # (touched pixels, C)
        grad.view(b, c, h * w).transpose(1, 2)[used // (h * w), used % (h * w)] = summed.to(ctx.feat_dtype)
        return grad, None, None, None, None


def roi_align_level(feat: Tensor, rois: Tensor, out: int, scale: float, ratio: int) -> Tensor:
    """``roi_align(aligned=True)``; through ``RoIAlignCPUGrad`` when a CPU feature map needs grad."""
    needs_grad = feat.requires_grad and torch.is_grad_enabled() and not torch.jit.is_tracing()
    needs_grad = needs_grad and not torch.compiler.is_compiling()  # graphs take torchvision's op
    if needs_grad and feat.device.type == "cpu":  # CUDA: torchvision's backward is parallel already
        return RoIAlignCPUGrad.apply(feat, rois, out, scale, ratio)
    return roi_align(feat, rois, out, spatial_scale=scale, sampling_ratio=ratio, aligned=True)

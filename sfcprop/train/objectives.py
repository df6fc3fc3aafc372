"""FC's dense loss (PixPro-style positives), the optional BYOL loss, and the EMA schedule.

Pure functions; shapes: `B` batch, `C` channels, `h x w` feature grid, `n = h * w` cells.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange


def cell_centres(boxes: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres of the `h x w` cells of each crop, in normalised source-image coordinates.

    `boxes` `[B, 4]` = `(x0, y0, x1, y1)` in [0, 1] -> `(centres [B, n, 2] as (x, y), cell
    diagonals [B])`; cell `(i, j)` (row i, column j) is centre number `i * w + j`, at
    `x0 + (j + 0.5) * (x1 - x0) / w`, `y0 + (i + 0.5) * (y1 - y0) / h`.
    """
    x0, y0, x1, y1 = boxes.unbind(-1)
    cw, ch = (x1 - x0) / w, (y1 - y0) / h  # [B]
    j = torch.arange(w, dtype=boxes.dtype, device=boxes.device) + 0.5
    i = torch.arange(h, dtype=boxes.dtype, device=boxes.device) + 0.5
    cx = x0[:, None, None] + j[None, None, :] * cw[:, None, None]  # [B, 1, w]
    cy = y0[:, None, None] + i[None, :, None] * ch[:, None, None]  # [B, h, 1]
    centres = torch.stack(torch.broadcast_tensors(cx, cy), dim=-1)  # [B, h, w, 2]
    return rearrange(centres, "b h w c -> b (h w) c"), torch.hypot(cw, ch)


def positive_mask(
    box_a: torch.Tensor, box_b: torch.Tensor, h: int, w: int, radius: float = 0.5
) -> torch.Tensor:
    """Positive pairs between the cells of two views: bool `[B, n_a, n_b]` (`n = h * w`).

    Cell p of view a and cell q of view b are positive when the distance between their centres,
    divided by the larger of the two views' cell diagonals, is below `radius`.
    """
    ca, da = cell_centres(box_a, h, w)
    cb, db = cell_centres(box_b, h, w)
    dist = torch.cdist(ca, cb, compute_mode="donot_use_mm_for_euclid_dist")  # exact, [B, n_a, n_b]
    dist = dist / torch.maximum(da, db)[:, None, None]
    return dist < radius


def dense_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One order of FC's loss: `-2 * mean_b(sum_pq cos(pred_p, target_q) m_pq / (sum m + 1e-6))`.

    `pred` `[B, C, h, w]` (online prediction of view a), `target` `[B, C, h, w]` (target
    projection of view b), `mask` `[B, n, n]` from `positive_mask(box_a, box_b)`. Scalar.
    """
    p = rearrange(F.normalize(pred.float(), dim=1), "b c h w -> b (h w) c")
    t = rearrange(F.normalize(target.float(), dim=1), "b c h w -> b (h w) c")
    m = mask.to(p.dtype)
    cos = torch.bmm(p, t.transpose(1, 2))  # [B, n, n]
    per_image = (cos * m).sum((1, 2)) / (m.sum((1, 2)) + 1e-6)
    return -2 * per_image.mean()


def dense_infonce_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    temperature: float = 0.07,
    batch_negatives: bool = False,
) -> torch.Tensor:
    """Contrastive variant (not in the paper): each cell of view a must pick its positives in b.

    For cell p with at least one positive: `-log(sum_{q pos} e^{s_pq} / sum_q e^{s_pq})`,
    `s = cos / temperature` against every cell of view b of the same image (the softmax the
    propagation itself uses), or of every image of the batch with `batch_negatives`; mean over
    those cells and the batch. Same shapes as `dense_loss`.
    """
    p = rearrange(F.normalize(pred.float(), dim=1), "b c h w -> b (h w) c")
    t = rearrange(F.normalize(target.float(), dim=1), "b c h w -> b (h w) c")
    if batch_negatives:  # one image of B * n cells against B * n keys
        p, t = rearrange(p, "b n c -> 1 (b n) c"), rearrange(t, "b n c -> 1 (b n) c")
        mask = torch.block_diag(*mask.to(torch.uint8)).bool()[None]
    logits = torch.bmm(p, t.transpose(1, 2)) / temperature  # [B, n, n]
    pos = torch.logsumexp(logits.masked_fill(~mask, float("-inf")), dim=2)  # [B, n]
    per_cell = torch.logsumexp(logits, dim=2) - pos
    has = mask.any(dim=2)
    return per_cell[has].mean() if has.any() else logits.sum() * 0


def cycle_loss(feats: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Contrastive random walk (CRW, Jabri et al. 2020) on dense features, not in the paper.

    `feats` `[B, K, C, h, w]`: K consecutive frames. Transitions
    `A_k = softmax(cos(f_k, f_{k+1}) / temperature)` over the cells of frame k+1 (and the
    reverse ones back); for each `k = 1 .. K-1` the palindrome walk `0 -> k -> 0` must return
    every cell to where it started: `-log` of the return probability, averaged over cells, the
    batch and the K-1 walks, in float32 even under autocast. Scalar.
    """
    with torch.autocast(feats.device.type, enabled=False):
        return _cycle_loss(F.normalize(feats.float(), dim=2), temperature)


def _cycle_loss(f: torch.Tensor, temperature: float) -> torch.Tensor:
    f = rearrange(f, "b k c h w -> b k (h w) c")
    k = f.shape[1]
    fwd = [
        torch.softmax(torch.bmm(f[:, i], f[:, i + 1].transpose(1, 2)) / temperature, dim=2)
        for i in range(k - 1)
    ]  # [B, n, n] each, rows: cells of frame i
    bwd = [
        torch.softmax(torch.bmm(f[:, i + 1], f[:, i].transpose(1, 2)) / temperature, dim=2)
        for i in range(k - 1)
    ]
    losses, out, back = [], fwd[0], bwd[0]
    for i in range(k - 1):
        if i:
            out = torch.bmm(out, fwd[i])  # walk 0 -> i+1
            back = torch.bmm(bwd[i], back)  # walk i+1 -> 0
        ret = torch.bmm(out, back).diagonal(dim1=1, dim2=2)  # [B, n]
        losses.append(-torch.log(ret.clamp_min(1e-20)).mean())
    return torch.stack(losses).mean()


def byol_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One order of BYOL's loss `2 - 2 cos(pred, target)`, batch mean; `[B, C]` each. Scalar."""
    cos = (F.normalize(pred.float(), dim=1) * F.normalize(target.float(), dim=1)).sum(1)
    return (2 - 2 * cos).mean()


def ema_momentum(step: int, total: int, base: float = 0.99) -> float:
    """EMA momentum `1 - (1 - base) * (cos(pi * step / total) + 1) / 2`: `base` at 0, 1 at end."""
    return 1 - (1 - base) * (math.cos(math.pi * step / total) + 1) / 2

"""Masked affinity, top-k and softmax: the functional core of label propagation.

Scores are cosines divided by the temperature (features are unit vectors; float16 or
bfloat16 features give float32 scores, see `precision`). The context
of a query frame is frame 0 (global: every key cell) plus short-term frames whose keys
are limited to the disk `|q - p| < radius` around each query cell p. Top-k runs jointly
over the whole context, then softmax over the k scores (spec section 4).

`local_topk` computes the short-term scores on windows around tiles of queries, so no
`[hw, hw]` matrix is built; `dense_propagation` is the plain reference used by tests.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from einops import rearrange

NEG = -1e10  # the reference adds this to disallowed entries before dividing by tau


def disk_offsets(radius: float) -> torch.Tensor:
    """Integer offsets (dy, dx) with dy^2 + dx^2 < radius^2, as `[D, 2]` int64."""
    r = math.ceil(radius) - 1
    ys, xs = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
    keep = ys**2 + xs**2 < radius**2
    return torch.stack([ys[keep], xs[keep]], dim=1)


def _check_query_keys(query: torch.Tensor, keys: torch.Tensor) -> None:
    if query.ndim != 3 or keys.ndim != 3 or query.shape != keys.shape:
        raise ValueError(
            f"query and keys must both be [C, h, w] of the same shape, got "
            f"{tuple(query.shape)} and {tuple(keys.shape)}"
        )
    if query.dtype != keys.dtype:
        raise ValueError(f"query and keys must have one dtype, got {query.dtype} and {keys.dtype}")


def global_topk(
    query: torch.Tensor, keys: torch.Tensor, k: int, temperature: float, chunk: int = 2048
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of `query . key / temperature` over every key cell (no radius).

    query, keys: `[C, h, w]`. Returns scores and key indices (flat in `[0, h*w)`), both
    `[h*w, min(k, h*w)]`, best first.
    """
    _check_query_keys(query, keys)
    q = rearrange(query, "c h w -> (h w) c")
    kf = rearrange(keys, "c h w -> c (h w)")
    k = min(k, kf.shape[1])
    vals, idx = [], []
    for start in range(0, q.shape[0], chunk):
        s = (q[start : start + chunk] @ kf).float().div_(temperature)  # [chunk, hw]
        v, i = s.topk(k, dim=1)
        vals.append(v)
        idx.append(i)
    return torch.cat(vals), torch.cat(idx)


@functools.lru_cache(maxsize=16)
def _window_tables(
    h: int, w: int, radius: float, tile: int, reach: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blocked `[B, T*T, S*S]` (True: outside the disk or the grid) and key index `[B, S*S]`.

    Tile b covers query rows `by*T .. by*T+T-1` (same for columns); its window holds the
    key cells `by*T - reach .. by*T + T - 1 + reach`, S = T + 2*reach.
    """
    t, s = tile, tile + 2 * reach
    ty, tx = torch.meshgrid(torch.arange(t), torch.arange(t), indexing="ij")
    wy, wx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    dy = wy.reshape(1, -1) - reach - ty.reshape(-1, 1)  # [T*T, S*S]
    dx = wx.reshape(1, -1) - reach - tx.reshape(-1, 1)
    in_disk = dy**2 + dx**2 < radius**2
    nby, nbx = -(-h // t), -(-w // t)
    y = torch.arange(nby).view(-1, 1, 1, 1) * t - reach + wy  # [by, 1, S, S]
    x = torch.arange(nbx).view(1, -1, 1, 1) * t - reach + wx  # [1, bx, S, S]
    in_grid = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    key_index = (y.clamp(0, h - 1) * w + x.clamp(0, w - 1)).expand(nby, nbx, s, s)
    in_grid = rearrange(in_grid, "by bx sy sx -> (by bx) 1 (sy sx)")
    blocked = ~(in_disk.unsqueeze(0) & in_grid)
    return blocked.to(device), rearrange(key_index, "by bx sy sx -> (by bx) (sy sx)").to(device)


def window_geometry(h: int, w: int, radius: float, tile: int | None = None) -> tuple[int, int]:
    """`(tile, reach)` of `local_topk` on an `h x w` grid: queries in `tile x tile` blocks,
    each against the keys up to `reach` cells beyond the block (window side `tile + 2 reach`).
    """
    t = tile or min(16, max(8, round(radius)))  # measured best on CPU for radius 12-15
    return t, min(math.ceil(radius) - 1, max(h, w) - 1)


def workspace_bytes(
    grid: tuple[int, int],
    channels: int,
    n_labels: int,
    topk: int,
    context: int,
    radius: float,
    global_rows: int,
    window_elems: int,
    feature_bytes: int = 4,
) -> int:
    """Bytes of one propagation step's temporaries at these block sizes: a block of
    `global_topk`'s scores (`global_rows` queries), a block of `local_topk`'s windows and
    scores (`window_elems` key elements), its window tables, the candidates of the
    `context + 1` slots and their `merge_topk`, and the label bank `gather_labels` reads."""
    h, w = grid
    n, slots = h * w, context + 1
    tile, reach = window_geometry(h, w, radius)
    window = tile + 2 * reach
    blocks = -(-h // tile) * -(-w // tile)
    fb = feature_bytes
    score = 4 if fb == 4 else fb + 4  # half scores are copied to float32
    elems = min(window_elems, blocks * window * window * channels)
    local = elems * (fb + score * tile**2 / channels) if context else 0
    return int(
        min(global_rows, n) * n * score  # a block of frame-0 scores
        + local  # a block of windows and their scores
        + (n * window * window * (1 + 8 / tile**2) if context else 0)  # mask + key index
        + 2 * slots * n * topk * 12  # candidates (float32 + int64) and their merge
        + slots * n * n_labels * 4  # the stacked label bank
        + 2 * n * n_labels * 4  # gathered labels
    )


def local_topk(
    query: torch.Tensor,
    keys: torch.Tensor,
    radius: float,
    k: int,
    temperature: float,
    tile: int | None = None,
    max_window_elems: int = 1 << 22,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of `query . key / temperature` over the keys strictly within `radius` cells.

    query, keys: `[C, h, w]` (one short-term frame). Returns scores and key indices (flat
    in `[0, h*w)`), both `[h*w, k']` with `k' = min(k, (T + 2*reach)^2)`; where the disk
    holds fewer than k' cells, the rest are `-inf` with index 0 (zero softmax weight).
    Queries are taken in `tile x tile` blocks; each block's keys are one window. Dividing
    by the temperature after the top-k selects the same keys (it is monotone).
    """
    _check_query_keys(query, keys)
    if radius <= 0:
        raise ValueError(f"radius must be > 0 feature cells, got {radius}")
    c, h, w = query.shape
    t, reach = window_geometry(h, w, radius, tile)
    s = t + 2 * reach
    nby, nbx = -(-h // t), -(-w // t)
    blocked, key_index = _window_tables(h, w, radius, t, reach, query.device)
    q = F.pad(query, (0, nbx * t - w, 0, nby * t - h))
    q = rearrange(q, "c (by ty) (bx tx) -> (by bx) (ty tx) c", ty=t, tx=t)  # [B, T*T, C]
    kp = F.pad(keys, (reach, reach + nbx * t - w, reach, reach + nby * t - h))
    kp = rearrange(kp, "c y x -> y x c").contiguous()  # channels last: windows copy rows of C
    windows = kp.unfold(0, s, t).unfold(1, s, t)  # [by, bx, C, S, S] (a view)
    k = min(k, s * s)
    rows_per_chunk = max(1, max_window_elems // (c * s * s * nbx))
    vals, idx = [], []
    for r0 in range(0, nby, rows_per_chunk):
        r1 = min(r0 + rows_per_chunk, nby)
        b0, b1 = r0 * nbx, r1 * nbx
        win = rearrange(windows[r0:r1], "by bx c sy sx -> (by bx) (sy sx) c")  # [b, S*S, C]
        scores = torch.bmm(q[b0:b1], win.transpose(1, 2)).float()  # [b, T*T, S*S] cosines
        v, i = scores.masked_fill_(blocked[b0:b1], float("-inf")).topk(k, dim=-1)
        vals.append(v.div_(temperature))
        idx.append(key_index[b0:b1].gather(1, i.flatten(1)).view_as(i))
    vals = rearrange(torch.cat(vals), "(by bx) (ty tx) k -> (by ty) (bx tx) k", by=nby, ty=t)
    idx = rearrange(torch.cat(idx), "(by bx) (ty tx) k -> (by ty) (bx tx) k", by=nby, ty=t)
    vals, idx = vals[:h, :w].reshape(h * w, k), idx[:h, :w].reshape(h * w, k)
    return vals, idx.masked_fill(vals == float("-inf"), 0)


def merge_topk(
    candidates: list[tuple[torch.Tensor, torch.Tensor]], k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Joint top-k over candidate lists, then softmax.

    candidates: `(scores [N, k_i], bank_index [N, k_i])` per context slot, where
    bank_index already points into the label bank. Exact, since the joint top-k is a
    subset of the union of per-slot top-k. Returns weights and indices, `[N, min(k, sum k_i)]`.
    """
    scores = torch.cat([s for s, _ in candidates], dim=1)
    index = torch.cat([i for _, i in candidates], dim=1)
    top, pick = scores.topk(min(k, scores.shape[1]), dim=1)
    return top.softmax(dim=1), index.gather(1, pick)


def gather_labels(weights: torch.Tensor, index: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """New soft labels `[N, L]`: `sum_j weights[:, j] * bank[index[:, j]]`; bank `[M, L]`."""
    return torch.einsum("nk,nkl->nl", weights, bank[index])


def dense_propagation(
    query: torch.Tensor,
    keys: torch.Tensor,
    labels: torch.Tensor,
    n_global: int,
    radius: float,
    k: int,
    temperature: float,
    chunk: int = 256,
) -> torch.Tensor:
    """Reference: the dense `(S*hw) x hw` affinity of the original code, one target frame.

    query `[C, h, w]`; keys `[S, C, h, w]` and their soft labels `[S, L, h, w]`; the first
    `n_global` slots are global, the others masked to the radius (-1e10 added before
    dividing by the temperature). Returns the new soft labels `[L, h, w]`.
    """
    s_, c, h, w = keys.shape
    kf = rearrange(keys, "s c h w -> (s h w) c")
    q = rearrange(query, "c h w -> c (h w)")
    bank = rearrange(labels, "s l h w -> (s h w) l")
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pos = torch.stack([yy.flatten(), xx.flatten()], 1).to(query.device, torch.float32)
    out = []
    for start in range(0, h * w, chunk):
        aff = kf @ q[:, start : start + chunk]  # [S*hw, n]
        far = torch.cdist(pos, pos[start : start + chunk]) >= radius  # [hw, n]
        aff = aff.view(s_, h * w, -1)
        aff[n_global:] += far.float() * NEG
        aff = aff.view(s_ * h * w, -1) / temperature
        top, ids = aff.topk(min(k, aff.shape[0]), dim=0)  # [k, n]
        out.append(torch.einsum("kn,knl->nl", top.softmax(dim=0), bank[ids]))
    return rearrange(torch.cat(out), "(h w) l -> l h w", h=h, w=w)

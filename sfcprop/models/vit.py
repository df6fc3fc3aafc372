"""DINO ViT-S/8 as a stride-8 `Correspondence` over its patch tokens.

Key names follow the DINO / timm `VisionTransformer` (`cls_token`, `pos_embed`,
`patch_embed.proj`, `blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}`, `norm`),
so the released `dino_deitsmall8_pretrain.pth` loads strictly. The feature map is the last
block's output after the final norm, CLS token dropped: 384-d tokens at stride 8, as in
DINO's `eval_video_segmentation.py`. Its registry entry, `dino-vits8`, is at the end.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from sfcprop.models import hub
from sfcprop.models.base import Correspondence
from sfcprop.models.registry import Entry, Release, Reported, register


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(rearrange(x, "b h n d -> b n (h d)"))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)


class ViTTokens(Correspondence):
    """A plain ViT (DINO layout) whose patch tokens form the feature map.

    `forward`: normalised `[B, 3, H, W]` -> unit `[B, dim, ceil(H/p), ceil(W/p)]`. Frames whose
    sides are not multiples of the patch size `p` are zero-padded (in normalised space, i.e.
    with the mean colour) at the bottom and right. The position embedding, trained on a
    `pretrain_size` square, is resampled bicubically to the token grid the way DINO does it.
    """

    def __init__(
        self,
        patch: int = 8,
        dim: int = 384,
        depth: int = 12,
        heads: int = 6,
        mlp_ratio: float = 4.0,
        pretrain_size: int = 224,
    ) -> None:
        super().__init__()
        self.stride, self.dim = patch, dim
        n = (pretrain_size // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, dim))
        self.patch_embed = _PatchEmbed(patch, dim)
        self.blocks = nn.ModuleList(_Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        """`[1, 1 + h*w, dim]`: the CLS position plus the patch grid resampled to `h x w`."""
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        side = math.isqrt(patch_pos.shape[1])
        if (h, w) == (side, side):
            return self.pos_embed
        grid = rearrange(patch_pos, "1 (gh gw) c -> 1 c gh gw", gh=side)
        # DINO's VisionTransformer.interpolate_pos_encoding: +0.1 avoids float rounding errors.
        scale = ((h + 0.1) / side, (w + 0.1) / side)
        grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", align_corners=False)
        grid = grid[:, :, :h, :w]
        return torch.cat([cls_pos, rearrange(grid, "1 c gh gw -> 1 (gh gw) c")], dim=1)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised `[B, 3, H, W]` -> normed tokens `[B, 1 + h*w, dim]` (CLS first)."""
        p = self.stride
        H, W = x.shape[-2:]
        x = F.pad(x, (0, -W % p, 0, -H % p))
        x = self.patch_embed.proj(x)
        h, w = x.shape[-2:]
        x = rearrange(x, "b c h w -> b (h w) c")
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self._pos_embed(h, w)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised `[B, 3, H, W]` -> unit `[B, dim, ceil(H/p), ceil(W/p)]`."""
        h, w = self.grid(*x.shape[-2:])
        feats = rearrange(self.tokens(x)[:, 1:], "b (h w) c -> b c h w", h=h, w=w)
        return F.normalize(feats, dim=1)


def vit_small8(**kwargs) -> ViTTokens:
    """DINO ViT-S/8: 384-d tokens at stride 8 (12 blocks, 6 heads)."""
    return ViTTokens(patch=8, dim=384, depth=12, heads=6, **kwargs)


# ---------------------------------------------------------------- registry entry

_DINO = "https://dl.fbaipublicfiles.com/dino/"

register(
    Entry(
        "dino-vits8",
        "vit_small8",
        vit_small8,
        384,
        releases={
            "dino": Release(
                hub.Source(
                    "dino_vits8",
                    "dino_deitsmall8_pretrain.pth",
                    url=_DINO + "dino_deitsmall8_pretrain/dino_deitsmall8_pretrain.pth",
                    hf_repo="timm/vit_small_patch8_224.dino",
                    hf_filename="model.safetensors",
                ),
                "dino",
            ),
            "dino-full": Release(
                hub.Source(
                    "dino_vits8_full",
                    "dino_deitsmall8_pretrain_full_checkpoint.pth",
                    url=_DINO + "dino_deitsmall8_pretrain/"
                    "dino_deitsmall8_pretrain_full_checkpoint.pth",
                ),
                "dino-full",
            ),
        },
        default="dino",
        paper="Caron et al., Emerging Properties in Self-Supervised Vision Transformers, ICCV 2021",
        licence="Apache-2.0",
        reported=Reported(
            69.9,
            "DINO eval_video_segmentation, DAVIS-2017 val 480p (n_last_frames 7, "
            "size_mask_neighborhood 12, topk 5)",
            "Caron et al. 2021, Table 5",
        ),
        notes="384-d patch tokens at stride 8 after the final norm (DINO's video segmentation)",
    ),
)

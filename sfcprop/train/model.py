"""FC's networks: online encoder + projector + predictor, and the EMA target.

Module names follow the released `pretrained_fc.pth` (`online_encoder`, `online_projector`,
`online_predictor`, `target_encoder`, `target_projector`; heads with `linear1`, `bn1`,
`linear2`), so our checkpoints' `model` dict has the released key layout.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from sfcprop.models.resnet import resnet18
from sfcprop.train.objectives import (
    byol_loss,
    cycle_loss,
    dense_infonce_loss,
    dense_loss,
    positive_mask,
)


class Head(nn.Module):
    """1x1 conv (or linear) to `hidden`, BN, ReLU, 1x1 conv (or linear) to `out`.

    `dense=True`: `[B, in, h, w] -> [B, out, h, w]`; `dense=False`: `[B, in] -> [B, out]`.
    """

    def __init__(self, in_dim: int, hidden: int, out: int, dense: bool = True) -> None:
        super().__init__()
        if dense:
            self.linear1 = nn.Conv2d(in_dim, hidden, 1)
            self.bn1 = nn.BatchNorm2d(hidden)
            self.linear2 = nn.Conv2d(hidden, out, 1)
        else:
            self.linear1 = nn.Linear(in_dim, hidden)
            self.bn1 = nn.BatchNorm1d(hidden)
            self.linear2 = nn.Linear(hidden, out)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.relu(self.bn1(self.linear1(x))))


class FCNet(nn.Module):
    """Online and target networks of FC; `forward` returns the training loss and its parts.

    Online encoder: ResNet-18, layer3 and layer4 at stride 1 (512 x S/8 x S/8 for an S crop).
    With `byol_weight > 0` an image-level branch is added (average-pooled features, MLP
    projector and predictor, SFC supplementary A.5).
    """

    def __init__(
        self,
        proj_hidden: int = 2048,
        proj_dim: int = 256,
        pos_radius: float = 0.5,
        byol_weight: float = 0.0,
        dense_objective: str = "cosine",
        temperature: float = 0.07,
        dense_on: str = "head",
        batch_negatives: bool = False,
        cycle_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.cycle_weight = cycle_weight
        self.heads = dense_on == "head"
        self.online_encoder = resnet18(keep_layer4=self.heads, normalize_output=False)
        dim = self.online_encoder.dim
        if self.heads:
            self.online_projector = Head(dim, proj_hidden, proj_dim)
            self.online_predictor = Head(proj_dim, proj_hidden, proj_dim)
        self.pos_radius, self.byol_weight = pos_radius, byol_weight
        self.dense_objective, self.temperature = dense_objective, temperature
        self.batch_negatives = batch_negatives
        if byol_weight > 0:
            self.online_byol_projector = Head(dim, proj_hidden, proj_dim, dense=False)
            self.online_byol_predictor = Head(proj_dim, proj_hidden, proj_dim, dense=False)
        self.target_encoder = copy.deepcopy(self.online_encoder)
        if self.heads:
            self.target_projector = copy.deepcopy(self.online_projector)
        if byol_weight > 0:
            self.target_byol_projector = copy.deepcopy(self.online_byol_projector)
        for p in self.target_parameters():
            p.requires_grad_(False)

    def _pairs(self) -> list[tuple[str, str]]:
        names = ["encoder"] + (["projector"] if self.heads else [])
        names += ["byol_projector"] if self.byol_weight > 0 else []
        return [(f"online_{n}", f"target_{n}") for n in names]

    def target_parameters(self) -> list[nn.Parameter]:
        return [p for _, t in self._pairs() for p in getattr(self, t).parameters()]

    def online_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    @torch.no_grad()
    def init_encoders(self, state: dict[str, torch.Tensor]) -> None:
        """Load trunk weights (torchvision keys, as `export_trunk` writes them) into the online
        encoder and copy it to the target. Only `layer4` may be missing (an exported trunk
        stops at layer3); its random init stays. Any other missing or unknown key is an error."""
        got = self.online_encoder.load_state_dict(state, strict=False)
        missing = [k for k in got.missing_keys if not k.startswith("layer4.")]
        if missing or got.unexpected_keys:
            raise KeyError(
                f"init weights do not fit the encoder: missing {missing}, "
                f"unexpected {got.unexpected_keys}"
            )
        self.target_encoder.load_state_dict(self.online_encoder.state_dict())

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """EMA of the parameters: `target = m * target + (1 - m) * online` (BN buffers not)."""
        for o, t in self._pairs():
            for po, pt in zip(
                getattr(self, o).parameters(), getattr(self, t).parameters(), strict=True
            ):
                pt.lerp_(po.detach(), 1 - momentum)

    def forward(
        self,
        v1: torch.Tensor,
        v2: torch.Tensor,
        b1: torch.Tensor,
        b2: torch.Tensor,
        clips: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Views `[B, 3, S, S]`, boxes `[B, 4]`, optional clips `[B', K, 3, S, S]` for the cycle
        term -> (total loss, {"dense", "byol", "cycle"} parts)."""
        f1, f2 = self.online_encoder(v1), self.online_encoder(v2)  # [B, 512 or 256, h, w]
        with torch.no_grad():
            g1, g2 = self.target_encoder(v1), self.target_encoder(v2)
        if self.heads:
            p1 = self.online_predictor(self.online_projector(f1))  # [B, 256, h, w]
            p2 = self.online_predictor(self.online_projector(f2))
            with torch.no_grad():
                t1, t2 = self.target_projector(g1), self.target_projector(g2)
        else:  # the layer3 features propagation uses, [B, 256, h, w]
            p1, p2, t1, t2 = f1, f2, g1, g2
        h, w = f1.shape[-2:]
        m12 = positive_mask(b1, b2, h, w, self.pos_radius)
        if self.dense_objective == "infonce":
            tau, neg = self.temperature, self.batch_negatives
            loss = dense_infonce_loss(p1, t2, m12, tau, neg) + dense_infonce_loss(
                p2, t1, m12.transpose(1, 2), tau, neg
            )
        else:
            loss = dense_loss(p1, t2, m12) + dense_loss(p2, t1, m12.transpose(1, 2))
        parts = {"dense": loss.detach()}
        if self.byol_weight > 0:
            q1 = self.online_byol_predictor(self.online_byol_projector(f1.mean((2, 3))))
            q2 = self.online_byol_predictor(self.online_byol_projector(f2.mean((2, 3))))
            with torch.no_grad():
                z1 = self.target_byol_projector(g1.mean((2, 3)))
                z2 = self.target_byol_projector(g2.mean((2, 3)))
            byol = byol_loss(q1, z2) + byol_loss(q2, z1)
            parts["byol"] = byol.detach()
            loss = loss + self.byol_weight * byol
        if self.cycle_weight > 0 and clips is not None:
            b, k = clips.shape[:2]
            f = self.online_encoder(clips.flatten(0, 1))  # [B' K, C, h, w], layer3 or layer4
            cyc = cycle_loss(f.unflatten(0, (b, k)), self.temperature)
            parts["cycle"] = cyc.detach()
            loss = loss + self.cycle_weight * cyc
        return loss, parts

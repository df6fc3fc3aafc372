"""FC pre-training (SFC seed A.1): dense correspondence learning and trunk export.

Public API: `TrainConfig`, `train`, `export_trunk`, `main` (the command line), and the pure
loss pieces `positive_mask`, `dense_loss`, `dense_infonce_loss`, `cycle_loss`,
`byol_loss`, `ema_momentum`.
"""

from sfcprop.train.cli import main
from sfcprop.train.config import TrainConfig
from sfcprop.train.export import export_trunk
from sfcprop.train.objectives import (
    byol_loss,
    cycle_loss,
    dense_infonce_loss,
    dense_loss,
    ema_momentum,
    positive_mask,
)
from sfcprop.train.trainer import train

__all__ = [
    "TrainConfig",
    "byol_loss",
    "cycle_loss",
    "dense_infonce_loss",
    "dense_loss",
    "ema_momentum",
    "export_trunk",
    "main",
    "positive_mask",
    "train",
]

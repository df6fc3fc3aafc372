"""Weights shipped with sfcprop (installed as `sfcprop.weights`); see MODEL_CARD.md."""

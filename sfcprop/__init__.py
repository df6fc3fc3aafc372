"""sfcprop: propagate labels through video by dense feature correspondence (SFC)."""

__version__ = "0.1.0"

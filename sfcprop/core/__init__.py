"""The engine: affinity kernels, the one-pass propagator (the model), feature fusion,
numeric precision and the memory planner. Functions on tensors with their shapes stated."""

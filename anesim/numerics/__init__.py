"""The engine's numerics: fp16 conversion, the MAC reduction rule, and numba kernels."""

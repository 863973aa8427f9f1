"""Random weight-only quantized expert weights (MXFP4, int4, int8) as the kernels take
them, with their exact float64 values from the oracle (``moe_mlir.reference_lowbit``).
Shared by the CPU tests of the layer in IR and through moe-compile."""

import numpy as np

from moe_mlir import reference_lowbit as lb


def quantized_weights(rng, fmt, E, N, K, group=None, zero_points=False):
    """(tensors, W): the stored tensors of E experts' [N, K] weights in ``fmt`` as a dict
    (``weights`` int8 [E, N, K / 2] or [E, N, K], ``scales``, and ``zero_points`` for
    asymmetric int4) and their float64 values W [E, N, K]."""
    if fmt == "mxfp4":
        blocks = lb.pack_nibbles(rng.integers(0, 16, size=(E, N, K)))
        # Scales around 2^0 keep a layer's output in a sensible range.
        scales = rng.integers(122, 128, size=(E, N, K // 32)).astype(np.uint8)
        return (dict(weights=blocks.view(np.int8), scales=scales),
                lb.dequantize_mxfp4(blocks, scales))
    if fmt == "int4":
        groups = -(-K // group)
        packed = lb.pack_nibbles(rng.integers(0, 16, size=(E, N, K)))
        scales = ((rng.random((E, N, groups)) + 0.5) / (4.0 * np.sqrt(K))).astype(np.float32)
        scales[0, 0, 0] = 0.0  # a zero scale: that group's weights are all zero
        zeros = (rng.integers(0, 16, size=(E, N, groups)).astype(np.int8)
                 if zero_points else None)
        tensors = dict(weights=packed.view(np.int8), scales=scales)
        if zero_points:
            tensors["zero_points"] = zeros
        return tensors, lb.dequantize_int4(packed, scales, zeros, group)
    q = rng.integers(-127, 128, size=(E, N, K)).astype(np.int8)
    scales = ((rng.random((E, N, 1)) + 0.5) / (64.0 * np.sqrt(K))).astype(np.float32)
    return dict(weights=q, scales=scales), lb.dequantize_int8(q, scales)

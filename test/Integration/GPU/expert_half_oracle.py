"""The fp64 oracle loop of the quantized expert halves on the GPU
(test_weight_only_gpu.py, test_fp8_variants_gpu.py): per expert hit, its rows'
gate/up product, the SiLU GLU (concatenated halves, moe_mlir.reference's, in
numpy), the down product and the routing weight, summed per token in float64.

How each product sees its input rows and dequantizes its weights is the
format's, so the two products are the caller's: `gate_up(e, i, tokens)` and
`down(e, i, a)` return float64 tensors on the GPU, where `i` counts the experts
hit (a caller can check its first one against numpy), `tokens` are expert e's
tokens (a CUDA index tensor) and `a` its GLU output (numpy, float64). The
products run on the GPU in float64: numpy would take minutes a call at the
benchmark shapes.
"""

from device_artifacts import torch  # noqa: E402


def expert_half(ids, routing, H, gate_up, down):
    """y [T, H] in float64 (numpy) for the selections `ids` [T, k] with their
    routing weights `routing` [T, k]."""
    from moe_mlir import reference as ref

    y = torch.zeros((ids.shape[0], H), dtype=torch.float64, device="cuda")
    routing = routing.double()
    for i, e in enumerate(torch.unique(ids).tolist()):  # experts with no token add nothing
        tokens, slots = torch.nonzero(ids == e, as_tuple=True)
        a = ref.glu(gate_up(e, i, tokens).cpu().numpy(), "silu", "concatenated")
        y.index_add_(0, tokens, routing[tokens, slots][:, None] * down(e, i, a))
    return y.cpu().numpy()

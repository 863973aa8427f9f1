"""How the GPU tests call moe-compile's CUDA layers and measure them: an output
poisoned with NaN, so that every element must be written, and the relative
error max |y - ref| / max |ref| that the bounds are stated in."""

import numpy as np

try:
    import torch
except ImportError:
    torch = None


def poisoned_call(layer, args, tokens):
    """Runs the ABI on `tokens` tokens into a bf16 output filled with NaN, with
    a workspace of the size the layer asks for, on torch's current stream."""
    hidden = layer.outputs[0]["shape"][1]
    y = torch.full((tokens, hidden), float("nan"), dtype=torch.bfloat16, device="cuda")
    size = layer.workspace_size(tokens)
    workspace = torch.empty(max(size, 1), dtype=torch.uint8, device="cuda")
    layer.forward_pointers([a.data_ptr() for a in args] + [y.data_ptr()], tokens,
                           workspace.data_ptr(), size,
                           torch.cuda.current_stream().cuda_stream)
    torch.cuda.synchronize()
    return y


def relative_error(got, want, rows=None):
    """max |got - want| / max |want| in float64 over `rows` (all where None);
    a NaN left in `got` (an element never written) makes it infinite. `got` is
    copied to the host as it is and widened there: a torch cast on the device
    would write a buffer that compute-sanitizer's initcheck, instrumenting
    only the project's kernels, takes for uninitialized."""
    got = got.cpu().float().numpy().astype(np.float64)
    if np.isnan(got).any():
        return float("inf")
    if rows is not None:
        got, want = got[rows], want[rows]
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def rms_error(got, want, rows=None):
    """The root mean square of got - want over that of want, in float64, over
    `rows` (all where None): how far the bulk of the elements is off, where
    relative_error gives the worst one."""
    got = got.cpu().float().numpy().astype(np.float64)
    if rows is not None:
        got, want = got[rows], want[rows]
    return float(np.sqrt(((got - want) ** 2).mean() / max((want ** 2).mean(), 1e-300)))

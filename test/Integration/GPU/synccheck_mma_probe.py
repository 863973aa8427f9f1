"""One-instruction kernels for telling a compute-sanitizer failure in a tool
from one in a kernel.

Each probe is a single-warp kernel of a few PTX lines that runs one
`mma.sync` shape (bf16 m16n8k16, e4m3 m16n8k32, and the e4m3 one inside a
loop after `bar.sync`, as the FP8 prefill tile has it) on constant inputs
and stores one accumulator per lane. It needs only the driver (libcuda,
which compiles the PTX itself) and prints one line per probe: `ok` where
every lane holds the exact sum, or what the launch or the check returned.
Run it plainly and under each tool, and compare:

    python3 test/Integration/GPU/synccheck_mma_probe.py
    compute-sanitizer --tool synccheck python3 test/Integration/GPU/synccheck_mma_probe.py

It exits non-zero if any probe fails.
"""

import ctypes
import sys

#: (name, the PTX mma instruction, the word every A and B register holds, the
#: accumulator each lane expects): 1.0 in every element, bf16 0x3F80 or e4m3
#: 0x38, so one MMA sums K ones.
PROBES = [
    ("bf16 m16n8k16",
     "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", 0x3F803F80, 16.0),
    ("e4m3 m16n8k32",
     "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32", 0x38383838, 32.0),
]
LOOP_STEPS = 8


def kernel_ptx(mma, word, looped):
    """A kernel `probe(float *out)` whose lane i writes accumulator 0 to out[i]."""
    body = f"""
    mov.b32 a0, {word}; mov.b32 a1, {word}; mov.b32 a2, {word}; mov.b32 a3, {word};
    mov.b32 b0, {word}; mov.b32 b1, {word};
    mov.f32 c0, 0f00000000; mov.f32 c1, 0f00000000;
    mov.f32 c2, 0f00000000; mov.f32 c3, 0f00000000;"""
    step = f"    {mma} {{c0, c1, c2, c3}}, {{a0, a1, a2, a3}}, {{b0, b1}}, {{c0, c1, c2, c3}};"
    if looped:
        body += f"""
    mov.u32 i, 0;
LOOP:
    bar.sync 0;
{step}
    add.u32 i, i, 1;
    setp.lt.u32 more, i, {LOOP_STEPS};
    @more bra LOOP;"""
    else:
        body += "\n" + step
    return f"""
.version 8.4
.target sm_90a
.address_size 64
.visible .entry probe(.param .u64 out) {{
    .reg .b32 a0, a1, a2, a3, b0, b1, i, lane;
    .reg .f32 c0, c1, c2, c3;
    .reg .u64 base, at;
    .reg .pred more;
{body}
    ld.param.u64 base, [out];
    cvta.to.global.u64 base, base;
    mov.u32 lane, %tid.x;
    mul.wide.u32 at, lane, 4;
    add.u64 at, base, at;
    st.global.f32 [at], c0;
    ret;
}}
"""


class Driver:
    def __init__(self):
        self.cuda = ctypes.CDLL("libcuda.so.1")
        self.check(self.cuda.cuInit(0), "cuInit")
        device, self.context = ctypes.c_int(), ctypes.c_void_p()
        self.check(self.cuda.cuDeviceGet(ctypes.byref(device), 0), "cuDeviceGet")
        self.check(self.cuda.cuDevicePrimaryCtxRetain(ctypes.byref(self.context), device),
                   "cuDevicePrimaryCtxRetain")
        self.check(self.cuda.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")

    def error(self, status):
        text = ctypes.c_char_p()
        self.cuda.cuGetErrorString(status, ctypes.byref(text))
        return (text.value or b"?").decode()

    def check(self, status, what):
        if status != 0:
            raise RuntimeError(f"{what}: {self.error(status)} ({status})")

    def run(self, ptx, lanes=32):
        module, function = ctypes.c_void_p(), ctypes.c_void_p()
        self.check(self.cuda.cuModuleLoadData(ctypes.byref(module), ptx.encode()),
                   "cuModuleLoadData")
        self.check(self.cuda.cuModuleGetFunction(ctypes.byref(function), module, b"probe"),
                   "cuModuleGetFunction")
        out = ctypes.c_uint64()
        self.check(self.cuda.cuMemAlloc_v2(ctypes.byref(out), lanes * 4), "cuMemAlloc")
        arg = ctypes.c_uint64(out.value)
        params = (ctypes.c_void_p * 1)(ctypes.cast(ctypes.byref(arg), ctypes.c_void_p))
        self.check(self.cuda.cuLaunchKernel(function, 1, 1, 1, lanes, 1, 1, 0, None,
                                            params, None), "cuLaunchKernel")
        self.check(self.cuda.cuCtxSynchronize(), "cuCtxSynchronize")
        host = (ctypes.c_float * lanes)()
        self.check(self.cuda.cuMemcpyDtoH_v2(host, out, lanes * 4), "cuMemcpyDtoH")
        self.cuda.cuMemFree_v2(out)
        self.cuda.cuModuleUnload(module)
        return list(host)


def main():
    try:
        driver = Driver()
    except (OSError, RuntimeError) as error:
        print(f"synccheck_mma_probe: no CUDA driver: {error}")
        return 2
    failed = 0
    for name, mma, word, expected in PROBES:
        for looped in (False, True):
            label = f"{name}{f', {LOOP_STEPS} steps after bar.sync' if looped else ''}"
            want = expected * (LOOP_STEPS if looped else 1)
            try:
                lanes = driver.run(kernel_ptx(mma, hex(word), looped))
                wrong = [v for v in lanes if v != want]
                result = "ok" if not wrong else f"wrong: {wrong[0]} where {want} ({len(wrong)} lanes)"
            except RuntimeError as error:
                result = f"failed: {error}"
            failed += result != "ok"
            print(f"  {label:45s} {result}", flush=True)
            if result.startswith("failed"):
                # A failed launch leaves the context unusable: stop here.
                return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

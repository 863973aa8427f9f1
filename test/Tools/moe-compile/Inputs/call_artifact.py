"""Loads the CPU artifact <dir>/libmoe_<name>.so and calls it on zeros of 3
tokens: prints the kernel variant the library chose, then "ok" and the
output's shape, or the error status and its message."""

import pathlib
import sys

import numpy as np

from moe_mlir import aot

layer = aot.Artifact(pathlib.Path(sys.argv[1]), sys.argv[2]).load()
print("variant", layer.cpu_variant)
try:
    print("ok", layer(*[np.zeros(layer.shape(t, 3), np.float32) for t in layer.inputs]).shape)
except aot.MoEError as error:
    print(error)

"""The SASS instruction mix of the kernels in compiled GPU artifacts: which
instructions ptxas made of each kernel, counted by opcode, e.g.

    python3 python/benchmarks/sass_mix.py --kernels grouped_matmul \\
        artifacts/gpu/libqwen3_30b_a3b_fp8.so

It shows what the PTX became on the chip (whether an e4m3 mma.sync is one
tensor-core instruction or conversions and f16 MMAs, how wide the loads are).
The fatbins are found inside each library by their header (magic 0xBA55ED50,
then version, header size and payload size), written to a temporary folder
and disassembled with `cuobjdump -sass` (CUDA_HOME/bin, or PATH).
"""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import tempfile

FATBIN_MAGIC = 0xBA55ED50


def fatbins(blob: bytes) -> list[bytes]:
    """Every fatbin in `blob`, whole (header and payload)."""
    found, at = [], 0
    magic = struct.pack("<I", FATBIN_MAGIC)
    while (at := blob.find(magic, at)) >= 0:
        if at + 16 <= len(blob):
            _, _, header, payload = struct.unpack_from("<IHHQ", blob, at)
            end = at + header + payload
            if header == 16 and 0 < payload and end <= len(blob):
                found.append(blob[at:end])
                at = end
                continue
        at += 4
    return found


def cuobjdump() -> str:
    candidate = pathlib.Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / "cuobjdump"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("cuobjdump")
    if not found:
        raise SystemExit("sass_mix: cuobjdump is not in CUDA_HOME/bin or on PATH")
    return found


FUNCTION = re.compile(r"^\s*Function : (\S+)")
# "        /*0070*/                   LDG.E.128 R4, desc[UR4][R2.64] ;"
INSTRUCTION = re.compile(r"^\s*/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)")


def mix(sass: str) -> dict[str, collections.Counter]:
    """Opcode counts (with their modifiers) per function."""
    counts: dict[str, collections.Counter] = {}
    current = None
    for line in sass.splitlines():
        if m := FUNCTION.match(line):
            current = counts.setdefault(m.group(1), collections.Counter())
        elif current is not None and (m := INSTRUCTION.match(line)):
            current[m.group(1)] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("libraries", nargs="+", type=pathlib.Path)
    parser.add_argument("--kernels", default="", help="regex: only kernels whose name matches")
    parser.add_argument("--top", type=int, default=25, help="opcodes shown per kernel")
    parser.add_argument("--dump", type=pathlib.Path, help="folder for the full SASS listings")
    args = parser.parse_args()
    pattern = re.compile(args.kernels)
    tool = cuobjdump()
    status = 0
    for library in args.libraries:
        blobs = fatbins(library.read_bytes())
        if not blobs:
            print(f"{library}: no fatbin inside", file=sys.stderr)
            status = 1
            continue
        for i, blob in enumerate(blobs):
            with tempfile.TemporaryDirectory() as folder:
                path = pathlib.Path(folder) / "kernels.fatbin"
                path.write_bytes(blob)
                run = subprocess.run([tool, "-sass", str(path)], capture_output=True, text=True)
            if run.returncode != 0:
                print(f"{library} fatbin {i}: cuobjdump failed: {run.stderr.strip()}", file=sys.stderr)
                status = 1
                continue
            if args.dump:
                args.dump.mkdir(parents=True, exist_ok=True)
                (args.dump / f"{library.stem}.{i}.sass").write_text(run.stdout)
            for name, counts in mix(run.stdout).items():
                if not pattern.search(name):
                    continue
                total = sum(counts.values())
                top = ", ".join(f"{op} {n}" for op, n in counts.most_common(args.top))
                print(f"{library.name} {name}: {total} instructions: {top}")
    sys.exit(status)


if __name__ == "__main__":
    main()

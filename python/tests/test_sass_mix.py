"""Tests of python/benchmarks/sass_mix.py's parts that need no CUDA toolkit:
finding the fatbins inside a library and counting a SASS listing's opcodes."""

import pathlib
import struct
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))

import sass_mix  # noqa: E402


def fatbin(payload: bytes) -> bytes:
    return struct.pack("<IHHQ", sass_mix.FATBIN_MAGIC, 1, 16, len(payload)) + payload


def test_fatbins_are_found_whole_between_other_bytes():
    first, second = fatbin(b"A" * 40), fatbin(b"B" * 24)
    blob = b"\x7fELF" + b"\0" * 13 + first + b"xyz" + second + b"tail"
    assert sass_mix.fatbins(blob) == [first, second]


def test_a_header_that_runs_past_the_end_is_not_a_fatbin():
    # The magic with a payload size past the blob, and with a header size
    # other than 16: neither is taken.
    truncated = struct.pack("<IHHQ", sass_mix.FATBIN_MAGIC, 1, 16, 1000) + b"short"
    odd_header = struct.pack("<IHHQ", sass_mix.FATBIN_MAGIC, 1, 24, 4) + b"data"
    assert sass_mix.fatbins(truncated) == []
    assert sass_mix.fatbins(odd_header) == []
    assert sass_mix.fatbins(b"no fatbin here") == []


LISTING = """
	code for sm_90a
		Function : moe_grouped_matmul_small
	.headerflags	@"EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0000*/                   LDC R1, c[0x0][0x28] ;
        /*0010*/                   LDG.E.128 R24, desc[UR12][R26.64] ;
        /*0020*/              @!P0 LDG.E.128 R28, desc[UR12][R30.64] ;
        /*0030*/                   HMMA.16816.F32 R72, R24.reuse, R72, RZ ;
        /*0040*/               @P1 BRA 0x10 ;
		Function : moe_combine
        /*0000*/                   EXIT ;
"""


def test_opcodes_are_counted_per_function_with_their_modifiers():
    counts = sass_mix.mix(LISTING)
    assert set(counts) == {"moe_grouped_matmul_small", "moe_combine"}
    small = counts["moe_grouped_matmul_small"]
    assert small["LDG.E.128"] == 2  # the predicated one too
    assert small["HMMA.16816.F32"] == 1
    assert small["BRA"] == 1 and small["LDC"] == 1
    assert sum(small.values()) == 5
    assert counts["moe_combine"] == {"EXIT": 1}

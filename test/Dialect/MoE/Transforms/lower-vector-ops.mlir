// moe.x86.permute_words: parsed and printed, and moe-lower-vector-ops turns
// it into the vpermw intrinsic on the same vectors (the table first), which
// the LLVM lowering keeps and llc selects as one vpermw.
// RUN: moe-opt %s | moe-opt | FileCheck %s --check-prefix=ROUNDTRIP
// RUN: moe-opt %s --moe-lower-vector-ops="target-cpu=sapphirerapids" | FileCheck %s
// RUN: moe-opt %s --moe-lower-vector-ops="target-cpu=sapphirerapids" --convert-func-to-llvm | mlir-translate --mlir-to-llvmir | llc -O2 -mcpu=sapphirerapids | FileCheck %s --check-prefix=ASM
// A target without AVX512BW is refused at the op, not left to the backend:
// RUN: not moe-opt %s --moe-lower-vector-ops="target-cpu=haswell" 2>&1 | FileCheck %s --check-prefix=AVX2
// RUN: not moe-opt %s --moe-lower-vector-ops="target-cpu=no-such-cpu" 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// AVX2: error: 'moe.x86.permute_words' op is vpermw, which needs AVX512BW; target-cpu 'haswell' has none
// UNKNOWN: error: 'moe.x86.permute_words' op moe-lower-vector-ops: unknown target-cpu 'no-such-cpu'

// ROUNDTRIP-LABEL: func.func @lookup
// ROUNDTRIP: moe.x86.permute_words %arg0[%arg1] : vector<32xi16>
// CHECK-LABEL: func.func @lookup
// CHECK-NOT: moe.x86.permute_words
// CHECK: llvm.call_intrinsic "llvm.x86.avx512.permvar.hi.512"(%arg0, %arg1) : (vector<32xi16>, vector<32xi16>) -> vector<32xi16>
// ASM-LABEL: lookup:
// ASM-NOT: vpand
// ASM: vpermw %zmm0, %zmm1, %zmm0
func.func @lookup(%table: vector<32xi16>, %indices: vector<32xi16>) -> vector<32xi16> {
  %w = moe.x86.permute_words %table[%indices] : vector<32xi16>
  return %w : vector<32xi16>
}

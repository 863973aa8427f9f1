// moe.x86.permute_words: parsed and printed, and moe-lower-vector-ops turns
// it into the vpermw intrinsic on the same vectors (the table first), which
// the LLVM lowering keeps and llc selects as one vpermw.
// RUN: moe-opt %s | moe-opt | FileCheck %s --check-prefix=ROUNDTRIP
// RUN: moe-opt %s --moe-lower-vector-ops | FileCheck %s
// RUN: moe-opt %s --moe-lower-vector-ops --convert-func-to-llvm | mlir-translate --mlir-to-llvmir | llc -O2 -mcpu=sapphirerapids | FileCheck %s --check-prefix=ASM

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

//===- MoEVectorOps.td - Vector ops of the CPU kernels -----*- tablegen -*-===//
//
// Target instructions the CPU kernels need that neither the vector dialect
// nor x86vector has. `moe-lower-vector-ops` turns each into a call of its
// LLVM intrinsic, after bufferization (which cannot analyze the calls).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEVECTOROPS_TD
#define MOE_DIALECT_MOE_IR_MOEVECTOROPS_TD

include "moe/Dialect/MoE/IR/MoEDialect.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def MoE_X86PermuteWordsOp : MoE_Op<"x86.permute_words", [Pure,
    AllTypesMatch<["table", "indices", "result"]>]> {
  let summary = "a 32-entry table of 16-bit words looked up per lane (vpermw)";
  let description = [{
    `result[i] = table[indices[i] mod 32]`: each word of `indices` selects a
    word of `table` by its low 5 bits; the other 11 bits are ignored. This
    is AVX512BW's `vpermw` on a 512-bit register, for targets that have it
    (the kernels emit it only where `target-cpu` has AVX512_BF16, which
    implies AVX512BW).

    A lookup written with `vector.extract` at dynamic positions must keep
    its indices in range, which costs a mask per lookup; with this op the
    bits above the index need not be cleared. The CPU kernel of 4-bit
    weights in 64-wide panels indexes its bf16 tables with the stored
    words, shifted, and nothing else.

    `moe-lower-vector-ops` (in `moe-lower-to-cpu-pipeline`, after
    bufferization) makes it `llvm.x86.avx512.permvar.hi.512`.

    ```mlir
    %w = moe.x86.permute_words %table[%indices] : vector<32xi16>
    ```
  }];
  let arguments = (ins VectorOfLengthAndType<[32], [I16]>:$table,
                       VectorOfLengthAndType<[32], [I16]>:$indices);
  let results = (outs VectorOfLengthAndType<[32], [I16]>:$result);
  let assemblyFormat = [{
    $table `[` $indices `]` attr-dict `:` type($result)
  }];
}

#endif // MOE_DIALECT_MOE_IR_MOEVECTOROPS_TD

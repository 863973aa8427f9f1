//===- MoEToLinalg.td - The reference lowering of moe ops --*- tablegen -*-===//

#ifndef MOE_CONVERSION_MOETOLINALG_MOETOLINALG_TD
#define MOE_CONVERSION_MOETOLINALG_MOETOLINALG_TD

include "mlir/Pass/PassBase.td"

def ConvertMoEToLinalgPass : Pass<"convert-moe-to-linalg"> {
  let summary = "Reference lowering of every moe op to linalg, tensor and scf";
  let description = [{
    Lowers each moe op (except `moe.layer`, which `moe-decompose-layer`
    handles first) to `linalg.generic` ops on tensors, with `scf.for` loops
    where the work is a sequential scan (top-k selection, the counting sort of
    the dispatch). The lowering favours obviously correct code over speed: it
    is the oracle inside the IR world.

    - Ranking (top-k, group selection, capacity, expert choice) counts, for
      each candidate, the candidates that rank strictly better; a candidate is
      kept when that count is below the budget. Ties go to the lower index and
      NaN ranks below -inf, as in the dialect's semantics.
    - `moe.grouped_matmul` computes one row per routed row against the
      weights of the expert owning it (a per-row expert index); rows outside
      every expert are zero and empty experts do no work.
    - `moe.combine` inverts `rows` and sums the k contributions of a token in
      ascending order in f32.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

#endif // MOE_CONVERSION_MOETOLINALG_MOETOLINALG_TD

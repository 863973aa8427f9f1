//===- Passes.td - Transformations of the moe dialect ------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
#define MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MoEDecomposeLayerPass : Pass<"moe-decompose-layer"> {
  let summary = "Rewrites moe.layer into the router matmul and the unfused ops";
  let description = [{
    Each `moe.layer` becomes the router matmul (`logits = x . router^T` in
    f32, a `linalg.generic`), `moe.route`, `moe.dispatch`, `moe.permute`, two
    `moe.grouped_matmul` with a `moe.glu` between them and `moe.combine`. A
    shared expert adds `glu(x . shared_w13^T) . shared_w2^T`, scaled by
    `sigmoid(x . shared_gate^T)` when that gate is given.

    Before:
    ```mlir
    %y = moe.layer ins(%x, %router, %w13, %w2 : ...) outs(%init : ...)
        {k = 2 : i64, renormalize} -> tensor<?x64xf32>
    ```
    After:
    ```mlir
    %logits = linalg.generic ... // x . router^T
    %w, %ids = moe.route %logits {k = 2 : i64, renormalize} : ...
    %rows, %offsets = moe.dispatch %ids weights(%w : ...) {num_experts = 8 : i64} : ...
    %xs = moe.permute ins(%x, %rows : ...) outs(...) {k = 2 : i64} -> ...
    %h = moe.grouped_matmul ins(%xs, %w13, %offsets : ...) outs(...) -> ...
    %a = moe.glu ins(%h : ...) outs(...) -> ...
    %ys = moe.grouped_matmul ins(%a, %w2, %offsets : ...) outs(...) -> ...
    %y = moe.combine ins(%ys, %rows, %w : ...) outs(%init : ...) -> ...
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

#endif // MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD

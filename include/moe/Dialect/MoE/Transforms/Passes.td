//===- Passes.td - Transformations of the moe dialect ------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
#define MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MoEDecomposeLayerPass : Pass<"moe-decompose-layer"> {
  let summary = "Rewrites moe.layer into the router matmul and the unfused ops";
  let description = [{
    Each `moe.layer` becomes the router matmul (`logits = x . router^T` in
    f32, a single-expert `moe.grouped_matmul` so dense projections share the
    grouped kernels), `moe.route`, `moe.dispatch`, `moe.permute`, two
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
    %logits = moe.grouped_matmul ins(%x, %router_1xExH, %all_rows : ...) ...
    %w, %ids = moe.route %logits {k = 2 : i64, renormalize} : ...
    %rows, %offsets = moe.dispatch %ids weights(%w : ...) {num_experts = 8 : i64} : ...
    %xs = moe.permute ins(%x, %rows : ...) outs(...) {k = 2 : i64} -> ...
    %h = moe.grouped_matmul ins(%xs, %w13, %offsets : ...) outs(...) -> ...
    %a = moe.glu ins(%h : ...) outs(...) -> ...
    %ys = moe.grouped_matmul ins(%a, %w2, %offsets : ...) outs(...) -> ...
    %y = moe.combine ins(%ys, %rows, %w : ...) outs(%init : ...) -> ...
    ```

    The intermediates are f32, so the reference rounds only at the end. With
    `bf16-weight-only-glu` (which `moe-lower-to-cpu-pipeline` sets), a layer
    with bf16 activations and weight-only quantized experts (mxfp4, int4,
    int8) makes its routed experts' GLU output bf16 instead, as the engines'
    kernels and the GPU path round it: the down projection then multiplies
    bf16 activations (`vdpbf16ps` on the CPU). FP8 layers keep it f32, which
    their activation quantization reads.
  }];
  let options = [
    Option<"bf16WeightOnlyGlu", "bf16-weight-only-glu", "bool",
           /*default=*/"false",
           "bf16 GLU output for bf16 layers with weight-only quantized experts">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def MoEFuseRoutingPass : Pass<"moe-fuse-routing"> {
  let summary = "Folds the permute, GLU and routing weights into the grouped matmuls";
  let description = [{
    Rewrites the unfused expert computation into the fused forms of the
    dialect:

    - a `moe.permute` feeding a `moe.grouped_matmul` becomes the matmul's
      `gather` (the permute folded into the A-operand load);
    - a `moe.glu` whose input is a grouped matmul's only use becomes that
      matmul's GLU `epilogue` (gate and up projections in one GEMM);
    - a `moe.combine` of a grouped matmul's only use moves the routing
      weights into that matmul's `row_scale` epilogue and becomes a
      `prescaled` combine: an unweighted, deterministic sum per token.

    Before:
    ```mlir
    %xs = moe.permute ins(%x, %rows : ...) outs(...) {k = 2 : i64} -> ...
    %h = moe.grouped_matmul ins(%xs, %w13, %offsets : ...) outs(...) -> ...
    %a = moe.glu ins(%h : ...) outs(...) -> ...
    %ys = moe.grouped_matmul ins(%a, %w2, %offsets : ...) outs(...) -> ...
    %y = moe.combine ins(%ys, %rows, %w : ...) outs(%init : ...) -> ...
    ```
    After:
    ```mlir
    %a = moe.grouped_matmul ins(%x, %w13, %offsets : ...) rows(%rows : ...)
        outs(...) {epilogue = #moe.activation<silu>, gather, k = 2 : i64} -> ...
    %ys = moe.grouped_matmul ins(%a, %w2, %offsets : ...) rows(%rows : ...)
        row_scale(%w : ...) outs(...) {k = 2 : i64} -> ...
    %y = moe.combine ins(%ys, %rows, %w : ...) outs(%init : ...) {prescaled} -> ...
    ```
  }];
}

def MoEQuantizeActivationsPass : Pass<"moe-quantize-activations"> {
  let summary = "Makes the activation quantization of FP8 grouped matmuls explicit";
  let description = [{
    A `moe.grouped_matmul` whose `weight_quant` quantizes its activations
    (`activation = dynamic` or `static`) gets, as its A operand, the
    quantized rows as the f32 values the product uses (each e4m3 value times
    its scale, computed by linalg.generic ops: the group amax, the scales,
    the rounding), and `activation = none`, so the matmul kernels only
    dequantize weights. The result is unchanged: the quantization is
    exactly the one the op specifies (docs/quantization.md).

    Before:
    ```mlir
    %h = moe.grouped_matmul ins(%xs, %w13, %offsets : ...)
        rhs_scales(%s : tensor<8x4x2xf32>) outs(...)
        {weight_quant = #moe.weight_quant<format = fp8_e4m3,
         block = [128, 128], activation = dynamic>} -> ...
    ```
    After:
    ```mlir
    %amax = linalg.generic ... // [M, ceil(K / 128)]
    %scales = linalg.generic ... // amax / 448, or 1
    %xq = linalg.generic ... // round_e4m3(x / scale) * scale
    %h = moe.grouped_matmul ins(%xq, %w13, %offsets : ...)
        rhs_scales(%s : tensor<8x4x2xf32>) outs(...)
        {weight_quant = #moe.weight_quant<format = fp8_e4m3,
         block = [128, 128], activation = none>} -> ...
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def MoELowerStridedCopiesPass : Pass<"moe-lower-strided-copies"> {
  let summary = "Turns memref.copy between non-contiguous buffers into linalg.copy";
  let description = [{
    Bufferization copies tiles and subviews with `memref.copy`; between
    buffers that are not both contiguous, the LLVM lowering of that op calls
    `memrefCopy` from MLIR's C runner library. This pass rewrites those copies
    into `linalg.copy`, which becomes plain loops, so compiled kernels depend
    on nothing but libc and libm (and libomp for threads).
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def MoELowerVectorOpsPass : Pass<"moe-lower-vector-ops"> {
  let summary = "Turns the moe dialect's vector ops into calls of their LLVM intrinsics";
  let description = [{
    `moe.x86.permute_words` becomes `llvm.call_intrinsic
    "llvm.x86.avx512.permvar.hi.512"` (vpermw) on the same vectors. It runs
    after bufferization, which cannot analyze intrinsic calls, and before
    the conversion to LLVM, which keeps them. A `target-cpu` without
    AVX512BW (which vpermw needs) is refused with a diagnostic at the op,
    rather than left to fail in the LLVM backend.
  }];
  let options = [
    Option<"targetCpu", "target-cpu", "std::string", /*default=*/"\"native\"",
           "the CPU the code is for (an LLVM x86 CPU name; native: the host)">,
  ];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

def MoEExportResultSizesPass
    : Pass<"moe-export-result-sizes", "::mlir::ModuleOp"> {
  let summary = "Adds a function giving the dynamic result sizes of each public function";
  let description = [{
    A caller of a compiled function passes a buffer for each result (the CPU
    pipeline makes results out-parameters), sized by what it expects; one too
    small for what the function computes would be written past its end. For
    each public function with a dynamic result size, this pass adds a public
    `@<name>__result_sizes`, taking the same arguments and returning the
    function's dynamic result sizes, in order, as one `tensor<N x i64>`: the
    sizes the function computes for those arguments. Canonicalization then
    folds them to the arguments' sizes and erases the rest of the body where
    the sizes do not depend on data. Callers that cannot know the sizes
    (`moe_mlir.cpu`) call it first and check their buffers.

    Likewise, for each public function with a dynamic argument size whose
    moe ops tie sizes that their verifiers cannot check (both dynamic: say
    the rows of `moe.dispatch`'s ids and weights), it adds
    `@<name>__check_sizes`, returning `tensor<1 x i32>`: 0 where they all
    agree for the arguments, else the 1-based index of the first that does
    not, described by the function's `moe.size_relations` (an array of
    strings). Inputs that disagree would make a lowering read past the
    shorter one.

    ```mlir
    func.func @f(%x: tensor<?x8xf32>) -> tensor<?x8xf32> { ... }
    // gains
    func.func @f__result_sizes(%x: tensor<?x8xf32>) -> tensor<1xi64> {
      ...
      %c0 = arith.constant 0 : index
      %d = tensor.dim %y, %c0 : tensor<?x8xf32>
      %n = arith.index_cast %d : index to i64
      %sizes = tensor.from_elements %n : tensor<1xi64>
      return %sizes : tensor<1xi64>
    }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect"];
}

def MoEApproximateMathPass : Pass<"moe-approximate-math"> {
  let summary = "Inline polynomial approximations of exp, erf and tanh";
  let description = [{
    Replaces `math.exp`, `math.erf` and `math.tanh` on f32 with MLIR's
    polynomial approximations (a few ulp of the correctly rounded result), so
    the activations and softmaxes of a layer are inline arithmetic instead of
    one libm call per element.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect"];
}

def MoEGPUWorkspacePass : Pass<"moe-gpu-workspace", "::mlir::ModuleOp"> {
  let summary = "Binds the host buffers of GPU code to caller memory";
  let description = [{
    Runs after bufferization of code whose compute is all in `gpu.launch`
    kernels. In every public function with a body:

    - a returned buffer that the function allocates becomes a trailing
      out-parameter, so the caller owns the result's device memory;
    - every other `memref.alloc` becomes a `memref.view` into one trailing
      `memref<?xi8>` workspace argument (each buffer 256-byte aligned);
    - a function `@<name>_workspace_size` taking the same inputs returns the
      bytes the workspace needs.

    Nothing is allocated per call, so the launches can be captured in a
    CUDA graph. Host code that would still read or write a buffer (a load,
    store or copy outside the kernels) is an error: those buffers live in
    device memory.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::func::FuncDialect",
                           "::mlir::memref::MemRefDialect"];
}

def MoESinkLaunchConstantsPass : Pass<"moe-sink-launch-constants"> {
  let summary = "Moves the constants that gpu.launch bodies use into them";
  let description = [{
    Clones into each `gpu.launch` body the constant-like values it uses from
    above (`arith.constant`, `llvm.mlir.constant`, `llvm.mlir.zero`), with
    the pure arithmetic and conversion casts that derive values from them
    alone. Canonicalization hoists constants out of launch bodies, and
    conversions materialize casts beside them in host code: outlined as
    they are, each becomes a kernel parameter, and divisions or shifts by
    it cannot be folded. Run it right before `gpu-kernel-outlining`.

    ```mlir
    %c4 = arith.constant 4 : index
    gpu.launch ... {
      %s = arith.remui %tile, %c4 : index
    ```
    becomes a launch body that defines its own `%c4`.

    `kernels` limits it to launches of those kernel names (the launch's
    `function`); empty, the default, means every launch. A name that no
    launch in the module has is an error. With
    `marked-only`, it takes only the launches marked
    `moe.inline_constants` (the GPU lowering marks the kernels whose
    `#moe.matmul_tile` asks for it).
  }];
  let options = [
    ListOption<"kernels", "kernels", "std::string",
               "kernel names (gpu.launch function) whose launches take their "
               "constants in; empty: all">,
    Option<"markedOnly", "marked-only", "bool", /*default=*/"false",
           "only the launches marked moe.inline_constants">,
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
}

#endif // MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD

//===- MoEDialect.td - The moe dialect definition ----------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_IR_MOEDIALECT_TD
#define MOE_DIALECT_MOE_IR_MOEDIALECT_TD

include "mlir/IR/OpBase.td"

def MoE_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::mlir::moe";
  let summary = "Mixture-of-Experts layers: routing, dispatch and expert computation";
  let description = [{
    The `moe` dialect describes a Mixture-of-Experts layer from the router
    logits to the weighted combine. Notation: `T` tokens, `H` hidden size, `E`
    experts, `k` experts per token, `I` expert intermediate size and
    `M = T * k` routed rows.

    Routing (`moe.route`, `moe.expert_choice`) selects experts and weights;
    `moe.dispatch` sorts the selections into a grouped layout (`rows` and
    `offsets`); `moe.permute`, `moe.grouped_matmul`, `moe.glu` and
    `moe.combine` compute the experts; `moe.layer` is the whole layer.
    `moe.gpu_kernels` (a `#moe.grouped_matmul_kernels`) on a
    `moe.grouped_matmul` records the GPU kernels it lowers to.
    Accumulation is f32 for f32, bf16 and f16 inputs. Ops with large results
    take a destination (`outs`) operand.
  }];
  let useDefaultAttributePrinterParser = 1;
  // `moe.gpu_kernels` on the ops that become GPU kernels.
  let hasOperationAttrVerify = 1;
  let extraClassDeclaration = [{
    /// The attribute that records a grouped matmul's GPU kernels.
    static llvm::StringRef getGpuKernelsAttrName() { return "moe.gpu_kernels"; }
    /// The unit attribute that asks moe-sink-launch-constants to move a
    /// gpu.launch's constants into its body.
    static llvm::StringRef getInlineConstantsAttrName() {
      return "moe.inline_constants";
    }
    /// The unit attribute on a gpu.launch that the host launches with
    /// programmatic dependent launch (sm_90): its body waits for the kernels
    /// before it with griddepcontrol.wait.
    static llvm::StringRef getProgrammaticLaunchAttrName() {
      return "moe.programmatic_launch";
    }
  }];
  let dependentDialects = ["::mlir::tensor::TensorDialect"];
}

class MoE_Op<string mnemonic, list<Trait> traits = []>
    : Op<MoE_Dialect, mnemonic, traits>;

#endif // MOE_DIALECT_MOE_IR_MOEDIALECT_TD

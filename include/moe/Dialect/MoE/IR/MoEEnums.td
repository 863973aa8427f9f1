//===- MoEEnums.td - Enumerations of the moe dialect -------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_IR_MOEENUMS_TD
#define MOE_DIALECT_MOE_IR_MOEENUMS_TD

include "mlir/IR/EnumAttr.td"

def MoE_Scoring : I32EnumAttr<"Scoring", "how router logits become probabilities", [
    I32EnumAttrCase<"softmax", 0>,
    I32EnumAttrCase<"sigmoid", 1>,
    I32EnumAttrCase<"softmax_topk", 2>,
    I32EnumAttrCase<"none", 3>]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_GroupScore : I32EnumAttr<"GroupScore", "score of an expert group", [
    I32EnumAttrCase<"sum_top2", 0>,
    I32EnumAttrCase<"max", 1>]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_SecondExpertPolicy : I32EnumAttr<"SecondExpertPolicy",
    "whether the second selection of a token is kept", [
    I32EnumAttrCase<"all", 0>,
    I32EnumAttrCase<"random", 1>]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_DropPolicy : I32EnumAttr<"DropPolicy",
    "which selections an overflowing expert keeps", [
    I32EnumAttrCase<"position", 0>,
    I32EnumAttrCase<"score", 1>]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_Activation : I32EnumAttr<"Activation", "activation of a gated linear unit", [
    I32EnumAttrCase<"silu", 0>,
    I32EnumAttrCase<"gelu", 1>,
    I32EnumAttrCase<"gelu_tanh", 2>,
    I32EnumAttrCase<"relu", 3>,
    I32EnumAttrCase<"swiglu_oai", 4>]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_GluLayout : I32EnumAttr<"GluLayout",
    "where the gate and up halves of a GLU input lie", [
    I32EnumAttrCase<"concatenated", 0>,
    I32EnumAttrCase<"interleaved", 1>]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_RhsLayout : I32EnumAttr<"RhsLayout", "layout of grouped matmul weights", [
    I32EnumAttrCase<"nk", 0>,
    I32EnumAttrCase<"kn", 1>,
    I32EnumAttrCase<"panels", 2>,
    I32EnumAttrCase<"panels_vnni", 3>]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_WeightFormat : I32EnumAttr<"WeightFormat",
    "element format of quantized expert weights", [
    I32EnumAttrCase<"fp8_e4m3", 0>,
    I32EnumAttrCase<"mxfp4", 1>,
    I32EnumAttrCase<"int4", 2>,
    I32EnumAttrCase<"int8", 3>]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_ActivationQuant : I32EnumAttr<"ActivationQuant",
    "how a quantized grouped matmul quantizes its activations", [
    I32EnumAttrCase<"none", 0>,
    I32EnumAttrCase<"dynamic", 1>,
    I32EnumAttrCase<"static_", 2, "static">]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_MatmulKernel : I32EnumAttr<"MatmulKernel",
    "the GPU kernel that computes a grouped matmul's tiles", [
    I32EnumAttrCase<"simt", 0>,
    I32EnumAttrCase<"mma_sync", 1>,
    I32EnumAttrCase<"mma_sync_staged", 2>,
    I32EnumAttrCase<"wgmma", 3>,
    I32EnumAttrCase<"wgmma_warp_specialized", 4>,
    I32EnumAttrCase<"mma_sync_fp8", 5>,
    I32EnumAttrCase<"wgmma_fp8", 6>,
    I32EnumAttrCase<"mma_sync_wonly", 7>,
    // mma_sync_fp8's loops with each e4m3 fragment widened to f16 pairs
    // for mma.sync.m16n8k16: FP8 weights on sm_80, which has no e4m3 MMA.
    I32EnumAttrCase<"mma_sync_fp8_f16", 8>]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_SharedLayout : I32EnumAttr<"SharedLayout",
    "how a matmul operand's tile lies in shared memory", [
    I32EnumAttrCase<"none", 0>,
    I32EnumAttrCase<"padded", 1>,
    I32EnumAttrCase<"swizzle_128b", 2>,
    I32EnumAttrCase<"k_chunk_major", 3>]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

#endif // MOE_DIALECT_MOE_IR_MOEENUMS_TD

//===- MoEOpBase.td - What the moe ops share ---------------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_IR_MOEOPBASE_TD
#define MOE_DIALECT_MOE_IR_MOEOPBASE_TD

include "moe/Dialect/MoE/IR/MoEAttrs.td"
include "mlir/Interfaces/DestinationStyleOpInterface.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/OpBase.td"

// Routing attributes shared by moe.route and moe.layer.
defvar MoE_RoutingArgs = (ins
    ConfinedAttr<I64Attr, [IntPositive]>:$k,
    DefaultValuedAttr<MoE_ScoringAttr, "::mlir::moe::Scoring::softmax">:$scoring,
    DefaultValuedAttr<I64Attr, "1">:$n_group,
    DefaultValuedAttr<I64Attr, "1">:$topk_group,
    DefaultValuedAttr<MoE_GroupScoreAttr,
                      "::mlir::moe::GroupScore::sum_top2">:$group_score,
    UnitAttr:$renormalize,
    DefaultValuedAttr<F64Attr, "0.0">:$renorm_epsilon,
    DefaultValuedAttr<F64Attr, "1.0">:$scale,
    DefaultValuedAttr<MoE_SecondExpertPolicyAttr,
                      "::mlir::moe::SecondExpertPolicy::all">:$second_expert_policy,
    DefaultValuedAttr<I64Attr, "0">:$seed);

// Capacity attributes shared by moe.dispatch and moe.layer.
defvar MoE_CapacityArgs = (ins
    OptionalAttr<I64Attr>:$capacity,
    OptionalAttr<F64Attr>:$capacity_factor,
    DefaultValuedAttr<MoE_DropPolicyAttr,
                      "::mlir::moe::DropPolicy::position">:$drop_policy);

// Activation attributes shared by moe.glu, moe.grouped_matmul and moe.layer.
defvar MoE_GluArgs = (ins
    DefaultValuedAttr<MoE_GluLayoutAttr,
                      "::mlir::moe::GluLayout::concatenated">:$glu_layout,
    DefaultValuedAttr<F64Attr, "1.702">:$alpha,
    DefaultValuedAttr<F64Attr, "7.0">:$limit);

class MoE_DpsOp<string mnemonic, list<Trait> traits = []>
    : MoE_Op<mnemonic, !listconcat(traits, [Pure,
        DestinationStyleOpInterface])> {
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() { return getInitMutable(); }
  }];
}

#endif // MOE_DIALECT_MOE_IR_MOEOPBASE_TD

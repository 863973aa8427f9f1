//===- MoEAttrs.td - Attributes of the moe dialect ---------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_IR_MOEATTRS_TD
#define MOE_DIALECT_MOE_IR_MOEATTRS_TD

include "moe/Dialect/MoE/IR/MoEDialect.td"
include "moe/Dialect/MoE/IR/MoEEnums.td"

class MoE_EnumAttr<EnumAttrInfo info, string mnemonic>
    : EnumAttr<MoE_Dialect, info, mnemonic> {
  let assemblyFormat = "`<` $value `>`";
}

def MoE_ScoringAttr : MoE_EnumAttr<MoE_Scoring, "scoring">;
def MoE_GroupScoreAttr : MoE_EnumAttr<MoE_GroupScore, "group_score">;
def MoE_SecondExpertPolicyAttr
    : MoE_EnumAttr<MoE_SecondExpertPolicy, "second_expert_policy">;
def MoE_DropPolicyAttr : MoE_EnumAttr<MoE_DropPolicy, "drop_policy">;
def MoE_ActivationAttr : MoE_EnumAttr<MoE_Activation, "activation">;
def MoE_GluLayoutAttr : MoE_EnumAttr<MoE_GluLayout, "glu_layout">;
def MoE_RhsLayoutAttr : MoE_EnumAttr<MoE_RhsLayout, "rhs_layout">;

#endif // MOE_DIALECT_MOE_IR_MOEATTRS_TD

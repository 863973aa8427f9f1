// The moe.weight_decode attribute that convert-moe-to-vector records names
// one of the kernel's decodings.
// RUN: moe-opt %s --split-input-file --verify-diagnostics

func.func @unknown_decode(%t: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{moe.weight_decode must be one of "fp8_e4m3_integer_ops", "mxfp4_table_permute", "mxfp4_integer_ops", "int4_table_permute", "int4_integer_ops", "int8_row_scale", "mxfp4_panel_bf16_table_dot", "int4_panel_bf16_table_dot", "mxfp4_panel_bf16_word_table_dot", "int4_panel_bf16_word_table_dot", "int4_panel_bf16_word_table_dot_zero_sums", "mxfp4_panel_table_permute", "int4_panel_table_permute", "mxfp4_panel_integer_ops", "int4_panel_integer_ops", "int8_panel_convert", "fp8_e4m3_panel_f16"}}
  %r = scf.forall (%i) in (4) shared_outs(%o = %t) -> (tensor<4xf32>) {
  } {moe.weight_decode = "lookup"}
  return %r : tensor<4xf32>
}

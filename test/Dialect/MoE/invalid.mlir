// RUN: moe-opt %s -split-input-file -verify-diagnostics

func.func @route_logits_rank(%l: tensor<8xf32>) {
  // expected-error @+1 {{'logits' must be a 2-D f32 tensor [T, E], got 'tensor<8xf32>'}}
  %w, %ids = moe.route %l {k = 2 : i64} : tensor<8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  return
}

// -----

func.func @route_logits_type(%l: tensor<4x8xbf16>) {
  // expected-error @+1 {{'logits' must be a 2-D f32 tensor [T, E], got 'tensor<4x8xbf16>'}}
  %w, %ids = moe.route %l {k = 2 : i64} : tensor<4x8xbf16> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @route_dynamic_experts(%l: tensor<4x?xf32>) {
  // expected-error @+1 {{'logits' dimension 1 (E) must be static, got 'tensor<4x?xf32>'}}
  %w, %ids = moe.route %l {k = 2 : i64} : tensor<4x?xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @route_k_zero(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{attribute 'k' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %w, %ids = moe.route %l {k = 0 : i64} : tensor<4x8xf32> -> tensor<4x0xf32>, tensor<4x0xi32>
  return
}

// -----

func.func @route_k_above_experts(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{k = 9 is out of range: expected 1 <= k <= E = 8}}
  %w, %ids = moe.route %l {k = 9 : i64} : tensor<4x8xf32> -> tensor<4x9xf32>, tensor<4x9xi32>
  return
}

// -----

func.func @route_n_group(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{n_group = 3 must divide the number of experts E = 8}}
  %w, %ids = moe.route %l {k = 2 : i64, n_group = 3 : i64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @route_topk_group(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{topk_group = 5 is out of range: expected 1 <= topk_group <= n_group = 4}}
  %w, %ids = moe.route %l {k = 2 : i64, n_group = 4 : i64, topk_group = 5 : i64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @route_k_beyond_groups(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{k = 5 exceeds the 4 experts reachable through topk_group = 2 groups of 2}}
  %w, %ids = moe.route %l {k = 5 : i64, n_group = 4 : i64, topk_group = 2 : i64} : tensor<4x8xf32> -> tensor<4x5xf32>, tensor<4x5xi32>
  return
}

// -----

func.func @route_sum_top2_single(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{group_score = sum_top2 needs at least 2 experts per group, got 1}}
  %w, %ids = moe.route %l {k = 2 : i64, n_group = 8 : i64, topk_group = 4 : i64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @route_random_policy(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{second_expert_policy = random needs k = 2 and renormalize}}
  %w, %ids = moe.route %l {k = 2 : i64, second_expert_policy = #moe.second_expert_policy<random>} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @route_epsilon(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{renorm_epsilon = -1.000000e+00 must be finite and >= 0}}
  %w, %ids = moe.route %l {k = 2 : i64, renormalize, renorm_epsilon = -1.0 : f64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @route_scale(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{scale = INF must be finite}}
  %w, %ids = moe.route %l {k = 2 : i64, scale = 0x7FF0000000000000 : f64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @route_bias_shape(%l: tensor<4x8xf32>, %b: tensor<7xf32>) {
  // expected-error @+1 {{'bias' dimension 0 (E) must be 8, got 'tensor<7xf32>'}}
  %w, %ids = moe.route %l bias(%b : tensor<7xf32>) {k = 2 : i64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @route_bias_type(%l: tensor<4x8xf32>, %b: tensor<8xi32>) {
  // expected-error @+1 {{'bias' must be a 1-D f32 tensor [E], got 'tensor<8xi32>'}}
  %w, %ids = moe.route %l bias(%b : tensor<8xi32>) {k = 2 : i64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @route_weights_shape(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{'weights' dimension 1 (k) must be 2, got 'tensor<4x3xf32>'}}
  %w, %ids = moe.route %l {k = 2 : i64} : tensor<4x8xf32> -> tensor<4x3xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @route_ids_type(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{'ids' must be a 2-D i32 tensor [T, k], got 'tensor<4x2xi64>'}}
  %w, %ids = moe.route %l {k = 2 : i64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi64>
  return
}

// -----

func.func @route_ids_tokens(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{'ids' dimension 0 (T) must be 4, got 'tensor<5x2xi32>'}}
  %w, %ids = moe.route %l {k = 2 : i64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<5x2xi32>
  return
}

// -----

func.func @expert_choice_rows(%l: tensor<16x8xf32>) {
  // expected-error @+1 {{'rows' dimension 0 (E * min(capacity, T)) must be 32, got 'tensor<30xi32>'}}
  %w, %rows, %offsets = moe.expert_choice %l {capacity = 4 : i64} : tensor<16x8xf32> -> tensor<16x8xf32>, tensor<30xi32>, tensor<9xi32>
  return
}

// -----

func.func @expert_choice_offsets(%l: tensor<16x8xf32>) {
  // expected-error @+1 {{'offsets' dimension 0 (E + 1) must be 9, got 'tensor<8xi32>'}}
  %w, %rows, %offsets = moe.expert_choice %l {capacity = 4 : i64} : tensor<16x8xf32> -> tensor<16x8xf32>, tensor<32xi32>, tensor<8xi32>
  return
}

// -----

func.func @expert_choice_weights(%l: tensor<16x8xf32>) {
  // expected-error @+1 {{'weights' dimension 1 (E) must be 8, got 'tensor<16x4xf32>'}}
  %w, %rows, %offsets = moe.expert_choice %l {capacity = 4 : i64} : tensor<16x8xf32> -> tensor<16x4xf32>, tensor<32xi32>, tensor<9xi32>
  return
}

// -----

func.func @dispatch_ids_type(%ids: tensor<4x2xf32>) {
  // expected-error @+1 {{'ids' must be a 2-D i32 tensor [T, k], got 'tensor<4x2xf32>'}}
  %rows, %offsets = moe.dispatch %ids {num_experts = 8 : i64} : tensor<4x2xf32> -> tensor<8xi32>, tensor<9xi32>
  return
}

// -----

func.func @dispatch_both_capacities(%ids: tensor<4x2xi32>) {
  // expected-error @+1 {{capacity and capacity_factor are mutually exclusive}}
  %rows, %offsets = moe.dispatch %ids {num_experts = 8 : i64, capacity = 2 : i64, capacity_factor = 1.0 : f64} : tensor<4x2xi32> -> tensor<8xi32>, tensor<9xi32>
  return
}

// -----

func.func @dispatch_capacity(%ids: tensor<4x2xi32>) {
  // expected-error @+1 {{capacity = 0 must be >= 1}}
  %rows, %offsets = moe.dispatch %ids {num_experts = 8 : i64, capacity = 0 : i64} : tensor<4x2xi32> -> tensor<8xi32>, tensor<9xi32>
  return
}

// -----

func.func @dispatch_capacity_factor(%ids: tensor<4x2xi32>) {
  // expected-error @+1 {{capacity_factor = -5.000000e-01 must be finite and > 0}}
  %rows, %offsets = moe.dispatch %ids {num_experts = 8 : i64, capacity_factor = -0.5 : f64} : tensor<4x2xi32> -> tensor<8xi32>, tensor<9xi32>
  return
}

// -----

func.func @dispatch_score_needs_weights(%ids: tensor<4x2xi32>) {
  // expected-error @+1 {{drop_policy = score needs the 'weights' operand}}
  %rows, %offsets = moe.dispatch %ids {num_experts = 8 : i64, capacity = 2 : i64, drop_policy = #moe.drop_policy<score>} : tensor<4x2xi32> -> tensor<8xi32>, tensor<9xi32>
  return
}

// -----

func.func @dispatch_weights_shape(%ids: tensor<4x2xi32>, %w: tensor<4x3xf32>) {
  // expected-error @+1 {{'weights' dimension 1 (k) must be 2, got 'tensor<4x3xf32>'}}
  %rows, %offsets = moe.dispatch %ids weights(%w : tensor<4x3xf32>) {num_experts = 8 : i64} : tensor<4x2xi32> -> tensor<8xi32>, tensor<9xi32>
  return
}

// -----

func.func @dispatch_expert_map(%ids: tensor<4x2xi32>, %map: tensor<6xi32>) {
  // expected-error @+1 {{'expert_map' dimension 0 (E) must be 8, got 'tensor<6xi32>'}}
  %rows, %offsets = moe.dispatch %ids expert_map(%map : tensor<6xi32>) {num_experts = 8 : i64} : tensor<4x2xi32> -> tensor<8xi32>, tensor<5xi32>
  return
}

// -----

func.func @dispatch_rows(%ids: tensor<4x2xi32>) {
  // expected-error @+1 {{'rows' dimension 0 (T * k) must be 8, got 'tensor<6xi32>'}}
  %rows, %offsets = moe.dispatch %ids {num_experts = 8 : i64} : tensor<4x2xi32> -> tensor<6xi32>, tensor<9xi32>
  return
}

// -----

func.func @dispatch_offsets(%ids: tensor<4x2xi32>) {
  // expected-error @+1 {{'offsets' dimension 0 (E + 1) must be 9, got 'tensor<8xi32>'}}
  %rows, %offsets = moe.dispatch %ids {num_experts = 8 : i64} : tensor<4x2xi32> -> tensor<8xi32>, tensor<8xi32>
  return
}

// -----

func.func @dispatch_offsets_dynamic(%ids: tensor<4x2xi32>, %map: tensor<8xi32>) {
  // expected-error @+1 {{'offsets' dimension 0 (experts + 1) must be static, got 'tensor<?xi32>'}}
  %rows, %offsets = moe.dispatch %ids expert_map(%map : tensor<8xi32>) {num_experts = 8 : i64} : tensor<4x2xi32> -> tensor<8xi32>, tensor<?xi32>
  return
}

// -----

func.func @dispatch_offsets_short(%ids: tensor<4x2xi32>, %map: tensor<8xi32>) {
  // expected-error @+1 {{'offsets' must have at least 2 entries, got 'tensor<1xi32>'}}
  %rows, %offsets = moe.dispatch %ids expert_map(%map : tensor<8xi32>) {num_experts = 8 : i64} : tensor<4x2xi32> -> tensor<8xi32>, tensor<1xi32>
  return
}

// -----

func.func @permute_hidden(%x: tensor<4x16xf32>, %rows: tensor<8xi32>, %init: tensor<8x12xf32>) {
  // expected-error @+1 {{'init' dimension 1 (H) must be 16, got 'tensor<8x12xf32>'}}
  %xs = moe.permute ins(%x, %rows : tensor<4x16xf32>, tensor<8xi32>) outs(%init : tensor<8x12xf32>) {k = 2 : i64} -> tensor<8x12xf32>
  return
}

// -----

func.func @permute_rows(%x: tensor<4x16xf32>, %rows: tensor<8xi64>, %init: tensor<8x16xf32>) {
  // expected-error @+1 {{'rows' must be a 1-D i32 tensor [M], got 'tensor<8xi64>'}}
  %xs = moe.permute ins(%x, %rows : tensor<4x16xf32>, tensor<8xi64>) outs(%init : tensor<8x16xf32>) {k = 2 : i64} -> tensor<8x16xf32>
  return
}

// -----

func.func @permute_result(%x: tensor<4x16xf32>, %rows: tensor<8xi32>, %init: tensor<8x16xf32>) {
  // expected-error @+1 {{result type 'tensor<8x16xbf16>' must match 'init' 'tensor<8x16xf32>'}}
  %xs = moe.permute ins(%x, %rows : tensor<4x16xf32>, tensor<8xi32>) outs(%init : tensor<8x16xf32>) {k = 2 : i64} -> tensor<8x16xbf16>
  return
}

// -----

func.func @grouped_matmul_lhs_type(%a: tensor<8x16xi32>, %w: tensor<4x32x16xf32>, %o: tensor<5xi32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'lhs' must be a 2-D f32/bf16/f16 tensor [M, K], got 'tensor<8x16xi32>'}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xi32>, tensor<4x32x16xf32>, tensor<5xi32>) outs(%init : tensor<8x32xf32>) -> tensor<8x32xf32>
  return
}

// -----

func.func @grouped_matmul_reduction(%a: tensor<8x16xf32>, %w: tensor<4x32x12xf32>, %o: tensor<5xi32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'rhs' has reduction size K = 12, which must equal K, the width of 'lhs', 16}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x32x12xf32>, tensor<5xi32>) outs(%init : tensor<8x32xf32>) -> tensor<8x32xf32>
  return
}

// -----

func.func @grouped_matmul_offsets(%a: tensor<8x16xf32>, %w: tensor<4x32x16xf32>, %o: tensor<4xi32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'offsets' must have length E + 1 = 5 for the 4 experts of 'rhs', got 'tensor<4xi32>'}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x32x16xf32>, tensor<4xi32>) outs(%init : tensor<8x32xf32>) -> tensor<8x32xf32>
  return
}

// -----

func.func @grouped_matmul_gather_rows(%a: tensor<8x16xf32>, %w: tensor<4x32x16xf32>, %o: tensor<5xi32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'gather' needs the 'rows' operand}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x32x16xf32>, tensor<5xi32>) outs(%init : tensor<8x32xf32>) {gather} -> tensor<8x32xf32>
  return
}

// -----

func.func @grouped_matmul_scale_rows(%a: tensor<8x16xf32>, %w: tensor<4x32x16xf32>, %o: tensor<5xi32>, %s: tensor<4x2xf32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'row_scale' needs the 'rows' operand}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x32x16xf32>, tensor<5xi32>) row_scale(%s : tensor<4x2xf32>) outs(%init : tensor<8x32xf32>) {k = 2 : i64} -> tensor<8x32xf32>
  return
}

// -----

func.func @grouped_matmul_unused_rows(%a: tensor<8x16xf32>, %w: tensor<4x32x16xf32>, %o: tensor<5xi32>, %r: tensor<8xi32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'rows' is used only with 'gather' or 'row_scale'}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x32x16xf32>, tensor<5xi32>) rows(%r : tensor<8xi32>) outs(%init : tensor<8x32xf32>) -> tensor<8x32xf32>
  return
}

// -----

func.func @grouped_matmul_k(%a: tensor<4x16xf32>, %w: tensor<4x32x16xf32>, %o: tensor<5xi32>, %r: tensor<8xi32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{k = 0 must be >= 1}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<5xi32>) rows(%r : tensor<8xi32>) outs(%init : tensor<8x32xf32>) {gather, k = 0 : i64} -> tensor<8x32xf32>
  return
}

// -----

func.func @grouped_matmul_scale_rows_len(%a: tensor<8x16xf32>, %w: tensor<4x32x16xf32>, %o: tensor<5xi32>, %r: tensor<6xi32>, %s: tensor<4x2xf32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'rows' dimension 0 (M, the rows of 'lhs') must be 8, got 'tensor<6xi32>'}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x32x16xf32>, tensor<5xi32>) rows(%r : tensor<6xi32>) row_scale(%s : tensor<4x2xf32>) outs(%init : tensor<8x32xf32>) {k = 2 : i64} -> tensor<8x32xf32>
  return
}

// -----

func.func @grouped_matmul_scale_shape(%a: tensor<8x16xf32>, %w: tensor<4x32x16xf32>, %o: tensor<5xi32>, %r: tensor<8xi32>, %s: tensor<4x3xf32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'row_scale' dimension 1 (k) must be 2, got 'tensor<4x3xf32>'}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x32x16xf32>, tensor<5xi32>) rows(%r : tensor<8xi32>) row_scale(%s : tensor<4x3xf32>) outs(%init : tensor<8x32xf32>) {k = 2 : i64} -> tensor<8x32xf32>
  return
}

// -----

func.func @grouped_matmul_glu_odd(%a: tensor<8x16xf32>, %w: tensor<4x31x16xf32>, %o: tensor<5xi32>, %init: tensor<8x15xf32>) {
  // expected-error @+1 {{'rhs' has odd width 31: a GLU needs an even width [M, 2I]}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x31x16xf32>, tensor<5xi32>) outs(%init : tensor<8x15xf32>) {epilogue = #moe.activation<silu>} -> tensor<8x15xf32>
  return
}

// -----

func.func @grouped_matmul_glu_width(%a: tensor<8x16xf32>, %w: tensor<4x32x16xf32>, %o: tensor<5xi32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'init' dimension 1 (N / 2 after the GLU epilogue) must be 16, got 'tensor<8x32xf32>'}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x32x16xf32>, tensor<5xi32>) outs(%init : tensor<8x32xf32>) {epilogue = #moe.activation<silu>} -> tensor<8x32xf32>
  return
}

// -----

func.func @grouped_matmul_dynamic_experts(%a: tensor<8x16xf32>, %w: tensor<?x32x16xf32>, %o: tensor<5xi32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'rhs' dimension 0 (E) must be static, got 'tensor<?x32x16xf32>'}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<?x32x16xf32>, tensor<5xi32>) outs(%init : tensor<8x32xf32>) -> tensor<8x32xf32>
  return
}

// -----

func.func @grouped_matmul_rows(%a: tensor<8x16xf32>, %w: tensor<4x32x16xf32>, %o: tensor<5xi32>, %init: tensor<6x32xf32>) {
  // expected-error @+1 {{'init' dimension 0 (M) must be 8, got 'tensor<6x32xf32>'}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x32x16xf32>, tensor<5xi32>) outs(%init : tensor<6x32xf32>) -> tensor<6x32xf32>
  return
}

// -----

func.func @glu_odd(%h: tensor<8x7xf32>, %init: tensor<8x3xf32>) {
  // expected-error @+1 {{'h' has odd width 7: a GLU needs an even width [M, 2I]}}
  %a = moe.glu ins(%h : tensor<8x7xf32>) outs(%init : tensor<8x3xf32>) -> tensor<8x3xf32>
  return
}

// -----

func.func @glu_limit(%h: tensor<8x8xf32>, %init: tensor<8x4xf32>) {
  // expected-error @+1 {{limit = 0.000000e+00 must be > 0}}
  %a = moe.glu ins(%h : tensor<8x8xf32>) outs(%init : tensor<8x4xf32>) {activation = #moe.activation<swiglu_oai>, limit = 0.0 : f64} -> tensor<8x4xf32>
  return
}

// -----

func.func @glu_alpha(%h: tensor<8x8xf32>, %init: tensor<8x4xf32>) {
  // expected-error @+1 {{alpha = nan must be finite}}
  %a = moe.glu ins(%h : tensor<8x8xf32>) outs(%init : tensor<8x4xf32>) {activation = #moe.activation<swiglu_oai>, alpha = 0x7FF8000000000000 : f64} -> tensor<8x4xf32>
  return
}

// -----

func.func @glu_width(%h: tensor<8x8xf32>, %init: tensor<8x8xf32>) {
  // expected-error @+1 {{'init' dimension 1 (I) must be 4, got 'tensor<8x8xf32>'}}
  %a = moe.glu ins(%h : tensor<8x8xf32>) outs(%init : tensor<8x8xf32>) -> tensor<8x8xf32>
  return
}

// -----

func.func @combine_rows(%ys: tensor<8x16xf32>, %rows: tensor<6xi32>, %w: tensor<4x2xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'rows' dimension 0 (M) must be 8, got 'tensor<6xi32>'}}
  %y = moe.combine ins(%ys, %rows, %w : tensor<8x16xf32>, tensor<6xi32>, tensor<4x2xf32>) outs(%init : tensor<4x16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @combine_tokens(%ys: tensor<8x16xf32>, %rows: tensor<8xi32>, %w: tensor<4x2xf32>, %init: tensor<5x16xf32>) {
  // expected-error @+1 {{'init' dimension 0 (T) must be 4, got 'tensor<5x16xf32>'}}
  %y = moe.combine ins(%ys, %rows, %w : tensor<8x16xf32>, tensor<8xi32>, tensor<4x2xf32>) outs(%init : tensor<5x16xf32>) -> tensor<5x16xf32>
  return
}

// -----

func.func @combine_weights(%ys: tensor<8x16xf32>, %rows: tensor<8xi32>, %w: tensor<4x2xbf16>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'weights' must be a 2-D f32 tensor [T, k], got 'tensor<4x2xbf16>'}}
  %y = moe.combine ins(%ys, %rows, %w : tensor<8x16xf32>, tensor<8xi32>, tensor<4x2xbf16>) outs(%init : tensor<4x16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_router(%x: tensor<4x16xf32>, %r: tensor<8x12xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'router' dimension 1 (H) must be 16, got 'tensor<8x12xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x12xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_w13_experts(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<6x32x16xf32>, %w2: tensor<8x16x16xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'w13' must hold E = 8 experts' [2I, H = 16] weights in the nk layout, got 'tensor<6x32x16xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<6x32x16xf32>, tensor<8x16x16xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_w13_odd(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x33x16xf32>, %w2: tensor<8x16x16xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'w13' has odd width 33: a GLU needs an even width [M, 2I]}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x33x16xf32>, tensor<8x16x16xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_w2(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x15xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'w2' must hold E = 8 experts' [H = 16, I = 16] weights in the nk layout, got 'tensor<8x16x15xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x15xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_panels_rank(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x1x16x16xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'w13' must be a 4-D f32/bf16/f16/f8E4M3FN/i8 tensor [E, N / P, K, P], got 'tensor<8x32x16xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x1x16x16xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64, weight_layout = #moe.rhs_layout<panels>} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_panels_w2(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x2x16x16xf32>, %w2: tensor<8x2x16x16xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'w2' must hold E = 8 experts' [H = 16, I = 16] weights in the panels layout, got 'tensor<8x2x16x16xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x2x16x16xf32>, tensor<8x2x16x16xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64, weight_layout = #moe.rhs_layout<panels>} -> tensor<4x16xf32>
  return
}

// -----

func.func @grouped_matmul_panels_vnni_odd(%a: tensor<8x16xbf16>, %w: tensor<4x2x8x15xbf16>, %o: tensor<5xi32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'rhs' dimension 3 (2P: each column's k-pairs) must be even, got 'tensor<4x2x8x15xbf16>'}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xbf16>, tensor<4x2x8x15xbf16>, tensor<5xi32>) outs(%init : tensor<8x32xf32>) {rhs_layout = #moe.rhs_layout<panels_vnni>} -> tensor<8x32xf32>
  return
}

// -----

func.func @grouped_matmul_panels_vnni_k(%a: tensor<8x15xbf16>, %w: tensor<4x2x8x32xbf16>, %o: tensor<5xi32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'rhs' has reduction size K = 16, which must equal K, the width of 'lhs', 15}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x15xbf16>, tensor<4x2x8x32xbf16>, tensor<5xi32>) outs(%init : tensor<8x32xf32>) {rhs_layout = #moe.rhs_layout<panels_vnni>} -> tensor<8x32xf32>
  return
}

// -----

func.func @grouped_matmul_panels_dynamic(%a: tensor<8x16xf32>, %w: tensor<4x?x16x8xf32>, %o: tensor<5xi32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'rhs' dimension 1 (N / P) must be static, got 'tensor<4x?x16x8xf32>'}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x?x16x8xf32>, tensor<5xi32>) outs(%init : tensor<8x32xf32>) {rhs_layout = #moe.rhs_layout<panels>} -> tensor<8x32xf32>
  return
}

// -----

func.func @layer_k(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{k = 12 is out of range: expected 1 <= k <= E = 8}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) outs(%init : tensor<4x16xf32>) {k = 12 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_shared_gate_alone(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %g: tensor<1x16xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'shared_gate' needs a shared expert}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) shared_gate(%g : tensor<1x16xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_shared_w2(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %s13: tensor<24x16xf32>, %s2: tensor<16x10xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'shared_w2' dimension 1 (Is) must be 12, got 'tensor<16x10xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) shared(%s13, %s2 : tensor<24x16xf32>, tensor<16x10xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_shared_gate_shape(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %s13: tensor<24x16xf32>, %s2: tensor<16x12xf32>, %g: tensor<2x16xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'shared_gate' dimension 0 (1) must be 1, got 'tensor<2x16xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) shared(%s13, %s2 : tensor<24x16xf32>, tensor<16x12xf32>) shared_gate(%g : tensor<2x16xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_init(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %init: tensor<4x12xf32>) {
  // expected-error @+1 {{'init' dimension 1 (H) must be 16, got 'tensor<4x12xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) outs(%init : tensor<4x12xf32>) {k = 2 : i64} -> tensor<4x12xf32>
  return
}

// -----

func.func @aux_loss_ids(%l: tensor<4x8xf32>, %ids: tensor<5x2xi32>) {
  // expected-error @+1 {{'ids' dimension 0 (T) must be 4, got 'tensor<5x2xi32>'}}
  %a = moe.aux_loss %l, %ids : tensor<4x8xf32>, tensor<5x2xi32> -> tensor<f32>
  return
}

// -----

func.func @aux_loss_result(%l: tensor<4x8xf32>, %ids: tensor<4x2xi32>) {
  // expected-error @+1 {{'loss' must be a 0-D f32 tensor, got 'tensor<1xf32>'}}
  %a = moe.aux_loss %l, %ids : tensor<4x8xf32>, tensor<4x2xi32> -> tensor<1xf32>
  return
}

// -----

func.func @z_loss_logits(%l: tensor<4x8xf16>) {
  // expected-error @+1 {{'logits' must be a 2-D f32 tensor [T, E], got 'tensor<4x8xf16>'}}
  %z = moe.z_loss %l : tensor<4x8xf16> -> tensor<f32>
  return
}

// -----

func.func @weight_quant_block(%x: tensor<4x16xbf16>, %w: tensor<8x32x16xf8E4M3FN>, %o: tensor<9xi32>, %s: tensor<8x2x1xf32>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{weight_quant block must be [bn, bk] with both >= 1, got [16, 0]}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x16xbf16>, tensor<8x32x16xf8E4M3FN>, tensor<9xi32>) rhs_scales(%s : tensor<8x2x1xf32>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 0], activation = dynamic>} -> tensor<4x32xf32>
  return
}

// -----

func.func @fp8_without_weight_quant(%x: tensor<4x16xbf16>, %w: tensor<8x32x16xf8E4M3FN>, %o: tensor<9xi32>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{'rhs' has element type 'f8E4M3FN', which needs a 'weight_quant' attribute and its scales}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x16xbf16>, tensor<8x32x16xf8E4M3FN>, tensor<9xi32>) outs(%init : tensor<4x32xf32>) -> tensor<4x32xf32>
  return
}

// -----

func.func @rhs_scales_without_weight_quant(%x: tensor<4x16xbf16>, %w: tensor<8x32x16xbf16>, %o: tensor<9xi32>, %init: tensor<4x32xf32>, %s: tensor<8x2x1xf32>) {
  // expected-error @+1 {{'rhs_scales' is used only with 'weight_quant'}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x16xbf16>, tensor<8x32x16xbf16>, tensor<9xi32>) rhs_scales(%s : tensor<8x2x1xf32>) outs(%init : tensor<4x32xf32>) -> tensor<4x32xf32>
  return
}

// -----

func.func @lhs_scales_without_weight_quant(%x: tensor<4x16xbf16>, %w: tensor<8x32x16xbf16>, %o: tensor<9xi32>, %init: tensor<4x32xf32>, %s: tensor<1xf32>) {
  // expected-error @+1 {{'lhs_scales' is used only with 'weight_quant'}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x16xbf16>, tensor<8x32x16xbf16>, tensor<9xi32>) lhs_scales(%s : tensor<1xf32>) outs(%init : tensor<4x32xf32>) -> tensor<4x32xf32>
  return
}

// -----

func.func @weight_quant_rhs_type(%x: tensor<4x16xbf16>, %w: tensor<8x32x16xbf16>, %o: tensor<9xi32>, %init: tensor<4x32xf32>, %s: tensor<8x2x1xf32>) {
  // expected-error @+1 {{'rhs' must hold 'f8E4M3FN' weights for weight_quant format fp8_e4m3, got 'tensor<8x32x16xbf16>'}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x16xbf16>, tensor<8x32x16xbf16>, tensor<9xi32>) rhs_scales(%s : tensor<8x2x1xf32>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 16], activation = dynamic>} -> tensor<4x32xf32>
  return
}

// -----

func.func @weight_quant_no_rhs_scales(%x: tensor<4x16xbf16>, %w: tensor<8x32x16xf8E4M3FN>, %o: tensor<9xi32>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{weight_quant needs the 'rhs_scales' operand, a 3-D f32 tensor [E, ceil(N / bn), ceil(K / bk)] = [8, 2, 1] for 'rhs'}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x16xbf16>, tensor<8x32x16xf8E4M3FN>, tensor<9xi32>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 16], activation = dynamic>} -> tensor<4x32xf32>
  return
}

// -----

func.func @weight_quant_rhs_scales_shape(%x: tensor<4x16xbf16>, %w: tensor<8x32x16xf8E4M3FN>, %o: tensor<9xi32>, %init: tensor<4x32xf32>, %s: tensor<8x2x2xf32>) {
  // expected-error @+1 {{'rhs_scales' must be a 3-D f32 tensor [E, ceil(N / bn), ceil(K / bk)] = [8, 2, 1] for 'rhs' and block = [16, 16], got 'tensor<8x2x2xf32>'}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x16xbf16>, tensor<8x32x16xf8E4M3FN>, tensor<9xi32>) rhs_scales(%s : tensor<8x2x2xf32>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 16], activation = dynamic>} -> tensor<4x32xf32>
  return
}

// -----

func.func @weight_quant_rhs_scales_type(%x: tensor<4x16xbf16>, %w: tensor<8x32x16xf8E4M3FN>, %o: tensor<9xi32>, %init: tensor<4x32xf32>, %s: tensor<8x2x1xbf16>) {
  // expected-error @+1 {{'rhs_scales' must be a 3-D f32 tensor [E, ceil(N / bn), ceil(K / bk)] = [8, 2, 1] for 'rhs' and block = [16, 16], got 'tensor<8x2x1xbf16>'}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x16xbf16>, tensor<8x32x16xf8E4M3FN>, tensor<9xi32>) rhs_scales(%s : tensor<8x2x1xbf16>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 16], activation = dynamic>} -> tensor<4x32xf32>
  return
}

// -----

func.func @weight_quant_static_no_lhs_scales(%x: tensor<4x16xbf16>, %w: tensor<8x32x16xf8E4M3FN>, %o: tensor<9xi32>, %init: tensor<4x32xf32>, %s: tensor<8x2x1xf32>) {
  // expected-error @+1 {{activation = static needs the 'lhs_scales' operand, a 1-D f32 tensor [1] (one scale for the tensor)}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x16xbf16>, tensor<8x32x16xf8E4M3FN>, tensor<9xi32>) rhs_scales(%s : tensor<8x2x1xf32>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 16], activation = static>} -> tensor<4x32xf32>
  return
}

// -----

func.func @weight_quant_dynamic_lhs_scales(%x: tensor<4x16xbf16>, %w: tensor<8x32x16xf8E4M3FN>, %o: tensor<9xi32>, %init: tensor<4x32xf32>, %s: tensor<8x2x1xf32>, %si: tensor<1xf32>) {
  // expected-error @+1 {{'lhs_scales' is used only with activation = static}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x16xbf16>, tensor<8x32x16xf8E4M3FN>, tensor<9xi32>) rhs_scales(%s : tensor<8x2x1xf32>) lhs_scales(%si : tensor<1xf32>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 16], activation = dynamic>} -> tensor<4x32xf32>
  return
}

// -----

func.func @weight_quant_lhs_scales_shape(%x: tensor<4x16xbf16>, %w: tensor<8x32x16xf8E4M3FN>, %o: tensor<9xi32>, %init: tensor<4x32xf32>, %s: tensor<8x2x1xf32>, %si: tensor<8xf32>) {
  // expected-error @+1 {{'lhs_scales' must be a 1-D f32 tensor [1], got 'tensor<8xf32>'}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x16xbf16>, tensor<8x32x16xf8E4M3FN>, tensor<9xi32>) rhs_scales(%s : tensor<8x2x1xf32>) lhs_scales(%si : tensor<8xf32>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 16], activation = static>} -> tensor<4x32xf32>
  return
}

// -----

func.func @layer_w13_scales_shape(%x: tensor<4x16xbf16>, %r: tensor<8x16xbf16>, %w13: tensor<8x32x16xf8E4M3FN>, %w2: tensor<8x16x16xf8E4M3FN>, %s13: tensor<8x1x1xf32>, %s2: tensor<8x1x1xf32>, %init: tensor<4x16xbf16>) {
  // expected-error @+1 {{'w13_scales' must be a 3-D f32 tensor [E, ceil(N / bn), ceil(K / bk)] = [8, 2, 1] for 'w13' and block = [16, 16], got 'tensor<8x1x1xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xbf16>, tensor<8x16xbf16>, tensor<8x32x16xf8E4M3FN>, tensor<8x16x16xf8E4M3FN>) scales(%s13, %s2 : tensor<8x1x1xf32>, tensor<8x1x1xf32>) outs(%init : tensor<4x16xbf16>) {k = 2 : i64, weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 16], activation = dynamic>} -> tensor<4x16xbf16>
  return
}

// -----

func.func @layer_w2_scales_shape(%x: tensor<4x16xbf16>, %r: tensor<8x16xbf16>, %w13: tensor<8x32x16xf8E4M3FN>, %w2: tensor<8x16x16xf8E4M3FN>, %s13: tensor<8x2x1xf32>, %s2: tensor<8x2x1xf32>, %init: tensor<4x16xbf16>) {
  // expected-error @+1 {{'w2_scales' must be a 3-D f32 tensor [E, ceil(N / bn), ceil(K / bk)] = [8, 1, 1] for 'w2' and block = [16, 16], got 'tensor<8x2x1xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xbf16>, tensor<8x16xbf16>, tensor<8x32x16xf8E4M3FN>, tensor<8x16x16xf8E4M3FN>) scales(%s13, %s2 : tensor<8x2x1xf32>, tensor<8x2x1xf32>) outs(%init : tensor<4x16xbf16>) {k = 2 : i64, weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 16], activation = dynamic>} -> tensor<4x16xbf16>
  return
}

// -----

func.func @layer_w13_input_scales_shape(%x: tensor<4x16xbf16>, %r: tensor<8x16xbf16>, %w13: tensor<8x32x16xf8E4M3FN>, %w2: tensor<8x16x16xf8E4M3FN>, %s13: tensor<8x2x1xf32>, %s2: tensor<8x1x1xf32>, %init: tensor<4x16xbf16>, %i13: tensor<8xf32>, %i2: tensor<1xf32>) {
  // expected-error @+1 {{'w13_input_scales' must be a 1-D f32 tensor [1], got 'tensor<8xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xbf16>, tensor<8x16xbf16>, tensor<8x32x16xf8E4M3FN>, tensor<8x16x16xf8E4M3FN>) scales(%s13, %s2 : tensor<8x2x1xf32>, tensor<8x1x1xf32>) input_scales(%i13, %i2 : tensor<8xf32>, tensor<1xf32>) outs(%init : tensor<4x16xbf16>) {k = 2 : i64, weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 16], activation = static>} -> tensor<4x16xbf16>
  return
}

// -----

func.func @layer_w2_input_scales_shape(%x: tensor<4x16xbf16>, %r: tensor<8x16xbf16>, %w13: tensor<8x32x16xf8E4M3FN>, %w2: tensor<8x16x16xf8E4M3FN>, %s13: tensor<8x2x1xf32>, %s2: tensor<8x1x1xf32>, %init: tensor<4x16xbf16>, %i13: tensor<1xf32>, %i2: tensor<2xf32>) {
  // expected-error @+1 {{'w2_input_scales' must be a 1-D f32 tensor [1], got 'tensor<2xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xbf16>, tensor<8x16xbf16>, tensor<8x32x16xf8E4M3FN>, tensor<8x16x16xf8E4M3FN>) scales(%s13, %s2 : tensor<8x2x1xf32>, tensor<8x1x1xf32>) input_scales(%i13, %i2 : tensor<1xf32>, tensor<2xf32>) outs(%init : tensor<4x16xbf16>) {k = 2 : i64, weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 16], activation = static>} -> tensor<4x16xbf16>
  return
}

// -----

func.func @weight_only_activation(%x: tensor<4x64xbf16>, %w: tensor<8x32x32xi8>, %o: tensor<9xi32>, %s: tensor<8x32x2xf32>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{weight_quant format int4 is weight-only: activation must be none, got dynamic}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x64xbf16>, tensor<8x32x32xi8>, tensor<9xi32>) rhs_scales(%s : tensor<8x32x2xf32>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = dynamic>} -> tensor<4x32xf32>
  return
}

// -----

func.func @weight_only_block_n(%x: tensor<4x64xbf16>, %w: tensor<8x32x32xi8>, %o: tensor<9xi32>, %s: tensor<8x16x2xf32>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{weight_quant format int4 has one scale per output row and group: block must be [1, bk], got [2, 32]}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x64xbf16>, tensor<8x32x32xi8>, tensor<9xi32>) rhs_scales(%s : tensor<8x16x2xf32>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = int4, block = [2, 32], activation = none>} -> tensor<4x32xf32>
  return
}

// -----

func.func @mxfp4_block(%x: tensor<4x64xbf16>, %w: tensor<8x32x32xi8>, %o: tensor<9xi32>, %s: tensor<8x32x4xf8E8M0FNU>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{weight_quant format mxfp4 has one scale per 32 K: block must be [1, 32], got [1, 16]}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x64xbf16>, tensor<8x32x32xi8>, tensor<9xi32>) rhs_scales(%s : tensor<8x32x4xf8E8M0FNU>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 16], activation = none>} -> tensor<4x32xf32>
  return
}

// -----

func.func @int4_group(%x: tensor<4x64xbf16>, %w: tensor<8x32x32xi8>, %o: tensor<9xi32>, %s: tensor<8x32x2xf32>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{weight_quant format int4 groups 32, 64 or 128 K: block must be [1, 32], [1, 64] or [1, 128], got [1, 48]}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x64xbf16>, tensor<8x32x32xi8>, tensor<9xi32>) rhs_scales(%s : tensor<8x32x2xf32>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = int4, block = [1, 48], activation = none>} -> tensor<4x32xf32>
  return
}

// -----

func.func @int4_rhs_type(%x: tensor<4x64xbf16>, %w: tensor<8x32x64xbf16>, %o: tensor<9xi32>, %s: tensor<8x32x2xf32>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{'rhs' must hold 'i8' weights for weight_quant format int4, got 'tensor<8x32x64xbf16>'}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x64xbf16>, tensor<8x32x64xbf16>, tensor<9xi32>) rhs_scales(%s : tensor<8x32x2xf32>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>} -> tensor<4x32xf32>
  return
}

// -----

func.func @int4_packed_reduction(%x: tensor<4x64xbf16>, %w: tensor<8x32x64xi8>, %o: tensor<9xi32>, %s: tensor<8x32x2xf32>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{'rhs' has reduction size K = 128, which must equal K, the width of 'lhs', 64}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x64xbf16>, tensor<8x32x64xi8>, tensor<9xi32>) rhs_scales(%s : tensor<8x32x2xf32>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>} -> tensor<4x32xf32>
  return
}

// -----

func.func @mxfp4_k_multiple(%x: tensor<4x48xbf16>, %w: tensor<8x32x24xi8>, %o: tensor<9xi32>, %s: tensor<8x32x2xf8E8M0FNU>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{'rhs' has K = 48, which must be a multiple of the mxfp4 block of 32}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x48xbf16>, tensor<8x32x24xi8>, tensor<9xi32>) rhs_scales(%s : tensor<8x32x2xf8E8M0FNU>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>} -> tensor<4x32xf32>
  return
}

// -----

func.func @int8_per_channel(%x: tensor<4x64xbf16>, %w: tensor<8x32x64xi8>, %o: tensor<9xi32>, %s: tensor<8x32x2xf32>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{weight_quant format int8 is per-channel: block must be [1, bk] with bk >= K = 64 of 'rhs', got [1, 32]}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x64xbf16>, tensor<8x32x64xi8>, tensor<9xi32>) rhs_scales(%s : tensor<8x32x2xf32>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = int8, block = [1, 32], activation = none>} -> tensor<4x32xf32>
  return
}

// -----

func.func @mxfp4_scales_type(%x: tensor<4x64xbf16>, %w: tensor<8x32x32xi8>, %o: tensor<9xi32>, %s: tensor<8x32x2xf32>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{'rhs_scales' must be a 3-D f8E8M0FNU tensor [E, ceil(N / bn), ceil(K / bk)] = [8, 32, 2] for 'rhs' and block = [1, 32], got 'tensor<8x32x2xf32>'}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x64xbf16>, tensor<8x32x32xi8>, tensor<9xi32>) rhs_scales(%s : tensor<8x32x2xf32>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>} -> tensor<4x32xf32>
  return
}

// -----

func.func @zero_points_format(%x: tensor<4x64xbf16>, %w: tensor<8x32x32xi8>, %o: tensor<9xi32>, %s: tensor<8x32x2xf8E8M0FNU>, %init: tensor<4x32xf32>, %z: tensor<8x32x2xi8>) {
  // expected-error @+1 {{'rhs_zero_points' is used only with weight_quant format int4, got format mxfp4}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x64xbf16>, tensor<8x32x32xi8>, tensor<9xi32>) rhs_scales(%s : tensor<8x32x2xf8E8M0FNU>) rhs_zero_points(%z : tensor<8x32x2xi8>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>} -> tensor<4x32xf32>
  return
}

// -----

func.func @zero_points_shape(%x: tensor<4x64xbf16>, %w: tensor<8x32x32xi8>, %o: tensor<9xi32>, %s: tensor<8x32x2xf32>, %init: tensor<4x32xf32>, %z: tensor<8x32x2xi32>) {
  // expected-error @+1 {{'rhs_zero_points' must be a 3-D i8 tensor [E, N, ceil(K / g)] = [8, 32, 2] for 'rhs' and block = [1, 32], got 'tensor<8x32x2xi32>'}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x64xbf16>, tensor<8x32x32xi8>, tensor<9xi32>) rhs_scales(%s : tensor<8x32x2xf32>) rhs_zero_points(%z : tensor<8x32x2xi32>) outs(%init : tensor<4x32xf32>) {weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>} -> tensor<4x32xf32>
  return
}

// -----

func.func @weight_only_layout(%x: tensor<4x64xbf16>, %w: tensor<8x64x16xi8>, %o: tensor<9xi32>, %s: tensor<8x32x2xf32>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{weight_quant format int4 needs rhs_layout = nk or panels, got kn}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x64xbf16>, tensor<8x64x16xi8>, tensor<9xi32>) rhs_scales(%s : tensor<8x32x2xf32>) outs(%init : tensor<4x32xf32>) {rhs_layout = #moe.rhs_layout<kn>, weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>} -> tensor<4x32xf32>
  return
}
// -----

func.func @i8_without_weight_quant(%x: tensor<4x64xbf16>, %w: tensor<8x32x64xi8>, %o: tensor<9xi32>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{'rhs' has element type 'i8', which needs a 'weight_quant' attribute and its scales}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x64xbf16>, tensor<8x32x64xi8>, tensor<9xi32>) outs(%init : tensor<4x32xf32>) -> tensor<4x32xf32>
  return
}

// -----

func.func @zero_points_without_weight_quant(%x: tensor<4x64xbf16>, %w: tensor<8x32x64xbf16>, %o: tensor<9xi32>, %z: tensor<8x32x2xi8>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{'rhs_zero_points' is used only with 'weight_quant'}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x64xbf16>, tensor<8x32x64xbf16>, tensor<9xi32>) rhs_zero_points(%z : tensor<8x32x2xi8>) outs(%init : tensor<4x32xf32>) -> tensor<4x32xf32>
  return
}

// -----

func.func @layer_weight_only_layout(%x: tensor<4x64xbf16>, %r: tensor<8x64xbf16>, %w13: tensor<8x32x64xi8>, %w2: tensor<8x64x16xi8>, %s13: tensor<8x64x2xf32>, %s2: tensor<8x64x1xf32>, %init: tensor<4x64xbf16>) {
  // expected-error @+1 {{weight_quant format int4 needs weight_layout = nk or panels, got kn}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x64xbf16>, tensor<8x64xbf16>, tensor<8x32x64xi8>, tensor<8x64x16xi8>) scales(%s13, %s2 : tensor<8x64x2xf32>, tensor<8x64x1xf32>) outs(%init : tensor<4x64xbf16>) {k = 2 : i64, weight_layout = #moe.rhs_layout<kn>, weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>} -> tensor<4x64xbf16>
  return
}

// -----

func.func @layer_weight_only_panel_scales(%x: tensor<4x64xbf16>, %r: tensor<8x64xbf16>, %w13: tensor<8x4x32x16xi8>, %w2: tensor<8x4x16x16xi8>, %s13: tensor<8x64x2xf32>, %s2: tensor<8x4x1x16xf32>, %init: tensor<4x64xbf16>) {
  // expected-error @+1 {{'w13_scales' must be a 4-D f32 tensor [E, N / P, ceil(K / bk), P] = [8, 4, 2, 16] for 'w13' and block = [1, 32], got 'tensor<8x64x2xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x64xbf16>, tensor<8x64xbf16>, tensor<8x4x32x16xi8>, tensor<8x4x16x16xi8>) scales(%s13, %s2 : tensor<8x64x2xf32>, tensor<8x4x1x16xf32>) outs(%init : tensor<4x64xbf16>) {k = 2 : i64, weight_layout = #moe.rhs_layout<panels>, weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>} -> tensor<4x64xbf16>
  return
}

// -----

func.func @panels_mxfp4_scales_shape(%x: tensor<4x64xbf16>, %w: tensor<8x2x32x16xi8>, %o: tensor<9xi32>, %s: tensor<8x32x2xf8E8M0FNU>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{'rhs_scales' must be a 4-D f8E8M0FNU tensor [E, N / P, ceil(K / bk), P] = [8, 2, 2, 16] for 'rhs' and block = [1, 32], got 'tensor<8x32x2xf8E8M0FNU>'}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x64xbf16>, tensor<8x2x32x16xi8>, tensor<9xi32>) rhs_scales(%s : tensor<8x32x2xf8E8M0FNU>) outs(%init : tensor<4x32xf32>) {rhs_layout = #moe.rhs_layout<panels>, weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>} -> tensor<4x32xf32>
  return
}

// -----

func.func @panels_zero_points_shape(%x: tensor<4x64xbf16>, %w: tensor<8x2x32x16xi8>, %o: tensor<9xi32>, %s: tensor<8x2x2x16xf32>, %z: tensor<8x32x2xi8>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{'rhs_zero_points' must be a 4-D i8 tensor [E, N / P, ceil(K / g), P] = [8, 2, 2, 16] for 'rhs' and block = [1, 32], got 'tensor<8x32x2xi8>'}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x64xbf16>, tensor<8x2x32x16xi8>, tensor<9xi32>) rhs_scales(%s : tensor<8x2x2x16xf32>) rhs_zero_points(%z : tensor<8x32x2xi8>) outs(%init : tensor<4x32xf32>) {rhs_layout = #moe.rhs_layout<panels>, weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>} -> tensor<4x32xf32>
  return
}

// -----

func.func @panels_int4_packed_k(%x: tensor<4x64xbf16>, %w: tensor<8x2x64x16xi8>, %o: tensor<9xi32>, %s: tensor<8x2x4x16xf32>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{'rhs' has reduction size K = 128, which must equal K, the width of 'lhs', 64}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x64xbf16>, tensor<8x2x64x16xi8>, tensor<9xi32>) rhs_scales(%s : tensor<8x2x4x16xf32>) outs(%init : tensor<4x32xf32>) {rhs_layout = #moe.rhs_layout<panels>, weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>} -> tensor<4x32xf32>
  return
}

// -----

func.func @panels_int8_storage(%x: tensor<4x64xbf16>, %w: tensor<8x2x64x16xbf16>, %o: tensor<9xi32>, %s: tensor<8x2x1x16xf32>, %init: tensor<4x32xf32>) {
  // expected-error @+1 {{'rhs' must hold 'i8' weights for weight_quant format int8, got 'tensor<8x2x64x16xbf16>'}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<4x64xbf16>, tensor<8x2x64x16xbf16>, tensor<9xi32>) rhs_scales(%s : tensor<8x2x1x16xf32>) outs(%init : tensor<4x32xf32>) {rhs_layout = #moe.rhs_layout<panels>, weight_quant = #moe.weight_quant<format = int8, block = [1, 64], activation = none>} -> tensor<4x32xf32>
  return
}

// -----

func.func @layer_weight_only_storage(%x: tensor<4x64xbf16>, %r: tensor<8x64xbf16>, %w13: tensor<8x64x32xbf16>, %w2: tensor<8x64x16xi8>, %s13: tensor<8x64x2xf32>, %s2: tensor<8x64x1xf32>, %init: tensor<4x64xbf16>) {
  // expected-error @+1 {{'w13' must hold 'i8' weights for weight_quant format int4, got 'tensor<8x64x32xbf16>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x64xbf16>, tensor<8x64xbf16>, tensor<8x64x32xbf16>, tensor<8x64x16xi8>) scales(%s13, %s2 : tensor<8x64x2xf32>, tensor<8x64x1xf32>) outs(%init : tensor<4x64xbf16>) {k = 2 : i64, weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>} -> tensor<4x64xbf16>
  return
}

// -----

func.func @layer_int4_packed_hidden(%x: tensor<4x64xbf16>, %r: tensor<8x64xbf16>, %w13: tensor<8x64x64xi8>, %w2: tensor<8x64x16xi8>, %s13: tensor<8x64x2xf32>, %s2: tensor<8x64x1xf32>, %init: tensor<4x64xbf16>) {
  // expected-error @+1 {{'w13' must hold E = 8 experts' [2I, H = 64] weights in the nk layout, got 'tensor<8x64x64xi8>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x64xbf16>, tensor<8x64xbf16>, tensor<8x64x64xi8>, tensor<8x64x16xi8>) scales(%s13, %s2 : tensor<8x64x2xf32>, tensor<8x64x1xf32>) outs(%init : tensor<4x64xbf16>) {k = 2 : i64, weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>} -> tensor<4x64xbf16>
  return
}

// -----

func.func @layer_int4_packed_intermediate(%x: tensor<4x64xbf16>, %r: tensor<8x64xbf16>, %w13: tensor<8x64x32xi8>, %w2: tensor<8x64x32xi8>, %s13: tensor<8x64x2xf32>, %s2: tensor<8x64x1xf32>, %init: tensor<4x64xbf16>) {
  // expected-error @+1 {{'w2' must hold E = 8 experts' [H = 64, I = 32] weights in the nk layout, got 'tensor<8x64x32xi8>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x64xbf16>, tensor<8x64xbf16>, tensor<8x64x32xi8>, tensor<8x64x32xi8>) scales(%s13, %s2 : tensor<8x64x2xf32>, tensor<8x64x1xf32>) outs(%init : tensor<4x64xbf16>) {k = 2 : i64, weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>} -> tensor<4x64xbf16>
  return
}

// -----

func.func @layer_int4_w2_scales(%x: tensor<4x64xbf16>, %r: tensor<8x64xbf16>, %w13: tensor<8x64x32xi8>, %w2: tensor<8x64x16xi8>, %s13: tensor<8x64x2xf32>, %s2: tensor<8x64x2xf32>, %init: tensor<4x64xbf16>) {
  // expected-error @+1 {{'w2_scales' must be a 3-D f32 tensor [E, ceil(N / bn), ceil(K / bk)] = [8, 64, 1] for 'w2' and block = [1, 32], got 'tensor<8x64x2xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x64xbf16>, tensor<8x64xbf16>, tensor<8x64x32xi8>, tensor<8x64x16xi8>) scales(%s13, %s2 : tensor<8x64x2xf32>, tensor<8x64x2xf32>) outs(%init : tensor<4x64xbf16>) {k = 2 : i64, weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>} -> tensor<4x64xbf16>
  return
}

// -----

func.func @layer_int4_zero_points_shape(%x: tensor<4x64xbf16>, %r: tensor<8x64xbf16>, %w13: tensor<8x64x32xi8>, %w2: tensor<8x64x16xi8>, %s13: tensor<8x64x2xf32>, %s2: tensor<8x64x1xf32>, %z13: tensor<8x64x2xi8>, %z2: tensor<8x64x2xi8>, %init: tensor<4x64xbf16>) {
  // expected-error @+1 {{'w2_zero_points' must be a 3-D i8 tensor [E, N, ceil(K / g)] = [8, 64, 1] for 'w2' and block = [1, 32], got 'tensor<8x64x2xi8>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x64xbf16>, tensor<8x64xbf16>, tensor<8x64x32xi8>, tensor<8x64x16xi8>) scales(%s13, %s2 : tensor<8x64x2xf32>, tensor<8x64x1xf32>) zero_points(%z13, %z2 : tensor<8x64x2xi8>, tensor<8x64x2xi8>) outs(%init : tensor<4x64xbf16>) {k = 2 : i64, weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>} -> tensor<4x64xbf16>
  return
}

// -----

func.func @layer_mxfp4_zero_points(%x: tensor<4x64xbf16>, %r: tensor<8x64xbf16>, %w13: tensor<8x64x32xi8>, %w2: tensor<8x64x16xi8>, %s13: tensor<8x64x2xf8E8M0FNU>, %s2: tensor<8x64x1xf8E8M0FNU>, %z13: tensor<8x64x2xi8>, %z2: tensor<8x64x1xi8>, %init: tensor<4x64xbf16>) {
  // expected-error @+1 {{'w13_zero_points' is used only with weight_quant format int4, got format mxfp4}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x64xbf16>, tensor<8x64xbf16>, tensor<8x64x32xi8>, tensor<8x64x16xi8>) scales(%s13, %s2 : tensor<8x64x2xf8E8M0FNU>, tensor<8x64x1xf8E8M0FNU>) zero_points(%z13, %z2 : tensor<8x64x2xi8>, tensor<8x64x1xi8>) outs(%init : tensor<4x64xbf16>) {k = 2 : i64, weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>} -> tensor<4x64xbf16>
  return
}

// -----

func.func @layer_mxfp4_scale_type(%x: tensor<4x64xbf16>, %r: tensor<8x64xbf16>, %w13: tensor<8x64x32xi8>, %w2: tensor<8x64x16xi8>, %s13: tensor<8x64x2xf32>, %s2: tensor<8x64x1xf32>, %init: tensor<4x64xbf16>) {
  // expected-error @+1 {{'w13_scales' must be a 3-D f8E8M0FNU tensor [E, ceil(N / bn), ceil(K / bk)] = [8, 64, 2] for 'w13' and block = [1, 32], got 'tensor<8x64x2xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x64xbf16>, tensor<8x64xbf16>, tensor<8x64x32xi8>, tensor<8x64x16xi8>) scales(%s13, %s2 : tensor<8x64x2xf32>, tensor<8x64x1xf32>) outs(%init : tensor<4x64xbf16>) {k = 2 : i64, weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>} -> tensor<4x64xbf16>
  return
}

// -----

func.func @layer_mxfp4_scales_missing(%x: tensor<4x64xbf16>, %r: tensor<8x64xbf16>, %w13: tensor<8x64x32xi8>, %w2: tensor<8x64x16xi8>, %init: tensor<4x64xbf16>) {
  // expected-error @+1 {{weight_quant needs the 'w13_scales' operand, a 3-D f8E8M0FNU tensor [E, ceil(N / bn), ceil(K / bk)] = [8, 64, 2] for 'w13'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x64xbf16>, tensor<8x64xbf16>, tensor<8x64x32xi8>, tensor<8x64x16xi8>) outs(%init : tensor<4x64xbf16>) {k = 2 : i64, weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>} -> tensor<4x64xbf16>
  return
}

// -----

func.func @layer_int8_block(%x: tensor<4x64xbf16>, %r: tensor<8x64xbf16>, %w13: tensor<8x64x64xi8>, %w2: tensor<8x64x32xi8>, %s13: tensor<8x64x2xf32>, %s2: tensor<8x64x1xf32>, %init: tensor<4x64xbf16>) {
  // expected-error @+1 {{weight_quant format int8 is per-channel: block must be [1, bk] with bk >= K = 64 of 'w13', got [1, 48]}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x64xbf16>, tensor<8x64xbf16>, tensor<8x64x64xi8>, tensor<8x64x32xi8>) scales(%s13, %s2 : tensor<8x64x2xf32>, tensor<8x64x1xf32>) outs(%init : tensor<4x64xbf16>) {k = 2 : i64, weight_quant = #moe.weight_quant<format = int8, block = [1, 48], activation = none>} -> tensor<4x64xbf16>
  return
}

// -----

func.func @layer_mxfp4_intermediate(%x: tensor<4x64xbf16>, %r: tensor<8x64xbf16>, %w13: tensor<8x32x32xi8>, %w2: tensor<8x64x8xi8>, %s13: tensor<8x32x2xf8E8M0FNU>, %s2: tensor<8x64x1xf8E8M0FNU>, %init: tensor<4x64xbf16>) {
  // expected-error @+1 {{'w2' has K = 16, which must be a multiple of the mxfp4 block of 32}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x64xbf16>, tensor<8x64xbf16>, tensor<8x32x32xi8>, tensor<8x64x8xi8>) scales(%s13, %s2 : tensor<8x32x2xf8E8M0FNU>, tensor<8x64x1xf8E8M0FNU>) outs(%init : tensor<4x64xbf16>) {k = 2 : i64, weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>} -> tensor<4x64xbf16>
  return
}

// -----

func.func @layer_zero_points_together(%x: tensor<4x64xbf16>, %r: tensor<8x64xbf16>, %w13: tensor<8x64x32xi8>, %w2: tensor<8x64x16xi8>, %s13: tensor<8x64x2xf32>, %s2: tensor<8x64x1xf32>, %z13: tensor<8x64x2xi8>, %init: tensor<4x64xbf16>) {
  // expected-error @+1 {{'w13_zero_points' and 'w2_zero_points' go together}}
  %y = "moe.layer"(%x, %r, %w13, %w2, %s13, %s2, %z13, %init) <{k = 2 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1>, weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>}> : (tensor<4x64xbf16>, tensor<8x64xbf16>, tensor<8x64x32xi8>, tensor<8x64x16xi8>, tensor<8x64x2xf32>, tensor<8x64x1xf32>, tensor<8x64x2xi8>, tensor<4x64xbf16>) -> tensor<4x64xbf16>
  return
}

// -----

func.func @grouped_matmul_bias_rank(%a: tensor<8x16xf32>, %w: tensor<4x32x16xf32>, %o: tensor<5xi32>, %b: tensor<32xf32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'bias' must be a 2-D f32/bf16/f16 tensor [E, N], got 'tensor<32xf32>'}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x32x16xf32>, tensor<5xi32>) bias(%b : tensor<32xf32>) outs(%init : tensor<8x32xf32>) -> tensor<8x32xf32>
  return
}

// -----

func.func @grouped_matmul_bias_type(%a: tensor<8x16xf32>, %w: tensor<4x32x16xf32>, %o: tensor<5xi32>, %b: tensor<4x32xi32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'bias' must be a 2-D f32/bf16/f16 tensor [E, N], got 'tensor<4x32xi32>'}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x32x16xf32>, tensor<5xi32>) bias(%b : tensor<4x32xi32>) outs(%init : tensor<8x32xf32>) -> tensor<8x32xf32>
  return
}

// -----

func.func @grouped_matmul_bias_dynamic_experts(%a: tensor<8x16xf32>, %w: tensor<4x32x16xf32>, %o: tensor<5xi32>, %b: tensor<?x32xf32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'bias' dimension 0 (E) must be static, got 'tensor<?x32xf32>'}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x32x16xf32>, tensor<5xi32>) bias(%b : tensor<?x32xf32>) outs(%init : tensor<8x32xf32>) -> tensor<8x32xf32>
  return
}

// -----

func.func @grouped_matmul_bias_dynamic_columns(%a: tensor<8x16xf32>, %w: tensor<4x32x16xf32>, %o: tensor<5xi32>, %b: tensor<4x?xf32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'bias' dimension 1 (N) must be static, got 'tensor<4x?xf32>'}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x32x16xf32>, tensor<5xi32>) bias(%b : tensor<4x?xf32>) outs(%init : tensor<8x32xf32>) -> tensor<8x32xf32>
  return
}

// -----

func.func @grouped_matmul_bias_experts(%a: tensor<8x16xf32>, %w: tensor<4x32x16xf32>, %o: tensor<5xi32>, %b: tensor<3x32xf32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'bias' dimension 0 (E) must be 4, got 'tensor<3x32xf32>'}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x32x16xf32>, tensor<5xi32>) bias(%b : tensor<3x32xf32>) outs(%init : tensor<8x32xf32>) -> tensor<8x32xf32>
  return
}

// -----

// The bias has N columns: the GLU epilogue's input width, not its output's.
func.func @grouped_matmul_bias_columns(%a: tensor<8x16xf32>, %w: tensor<4x32x16xf32>, %o: tensor<5xi32>, %b: tensor<4x16xf32>, %init: tensor<8x16xf32>) {
  // expected-error @+1 {{'bias' dimension 1 (N) must be 32, got 'tensor<4x16xf32>'}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x32x16xf32>, tensor<5xi32>) bias(%b : tensor<4x16xf32>) outs(%init : tensor<8x16xf32>) {epilogue = #moe.activation<silu>} -> tensor<8x16xf32>
  return
}

// -----

// With the kn layout ([E, K, N]) the bias still has N columns.
func.func @grouped_matmul_bias_columns_kn(%a: tensor<8x16xf32>, %w: tensor<4x16x32xf32>, %o: tensor<5xi32>, %b: tensor<4x16xf32>, %init: tensor<8x32xf32>) {
  // expected-error @+1 {{'bias' dimension 1 (N) must be 32, got 'tensor<4x16xf32>'}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x16x32xf32>, tensor<5xi32>) bias(%b : tensor<4x16xf32>) outs(%init : tensor<8x32xf32>) {rhs_layout = #moe.rhs_layout<kn>} -> tensor<8x32xf32>
  return
}

// -----

func.func @layer_router_bias_rank(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %br: tensor<1x8xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'router_bias' must be a 1-D f32/bf16/f16 tensor [E], got 'tensor<1x8xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) router_bias(%br : tensor<1x8xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_router_bias_dynamic(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %br: tensor<?xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'router_bias' dimension 0 (E) must be static, got 'tensor<?xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) router_bias(%br : tensor<?xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_router_bias_experts(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %br: tensor<6xbf16>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'router_bias' dimension 0 (E) must be 8, got 'tensor<6xbf16>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) router_bias(%br : tensor<6xbf16>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_w13_bias_type(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %b: tensor<8x32xi8>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'w13_bias' must be a 2-D f32/bf16/f16 tensor [E, 2I], got 'tensor<8x32xi8>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) w13_bias(%b : tensor<8x32xi8>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_w13_bias_dynamic(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %b: tensor<8x?xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'w13_bias' dimension 1 (2I) must be static, got 'tensor<8x?xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) w13_bias(%b : tensor<8x?xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_w13_bias_experts(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %b: tensor<4x32xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'w13_bias' dimension 0 (E) must be 8, got 'tensor<4x32xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) w13_bias(%b : tensor<4x32xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_w13_bias_width(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %b: tensor<8x16xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'w13_bias' dimension 1 (2I) must be 32, got 'tensor<8x16xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) w13_bias(%b : tensor<8x16xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_w2_bias_rank(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %b: tensor<8x16x1xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'w2_bias' must be a 2-D f32/bf16/f16 tensor [E, H], got 'tensor<8x16x1xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) w2_bias(%b : tensor<8x16x1xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_w2_bias_dynamic(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %b: tensor<?x16xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'w2_bias' dimension 0 (E) must be static, got 'tensor<?x16xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) w2_bias(%b : tensor<?x16xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_w2_bias_experts(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %b: tensor<2x16xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'w2_bias' dimension 0 (E) must be 8, got 'tensor<2x16xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) w2_bias(%b : tensor<2x16xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_w2_bias_hidden(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %b: tensor<8x32xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'w2_bias' dimension 1 (H) must be 16, got 'tensor<8x32xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) w2_bias(%b : tensor<8x32xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_router_bias_type(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %b: tensor<8xi32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'router_bias' must be a 1-D f32/bf16/f16 tensor [E], got 'tensor<8xi32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) router_bias(%b : tensor<8xi32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_w13_bias_rank(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %b: tensor<32xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'w13_bias' must be a 2-D f32/bf16/f16 tensor [E, 2I], got 'tensor<32xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) w13_bias(%b : tensor<32xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_w13_bias_dynamic_experts(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %b: tensor<?x32xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'w13_bias' dimension 0 (E) must be static, got 'tensor<?x32xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) w13_bias(%b : tensor<?x32xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_w2_bias_type(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %b: tensor<8x16xf64>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'w2_bias' must be a 2-D f32/bf16/f16 tensor [E, H], got 'tensor<8x16xf64>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) w2_bias(%b : tensor<8x16xf64>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_w2_bias_dynamic_hidden(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %b: tensor<8x?xf32>, %init: tensor<4x16xf32>) {
  // expected-error @+1 {{'w2_bias' dimension 1 (H) must be static, got 'tensor<8x?xf32>'}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) w2_bias(%b : tensor<8x?xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return
}

// -----

func.func @dispatch_row_of_size(%ids: tensor<8x2xi32>) {
  // expected-error @+1 {{'row_of' dimension 0 (T * k) must be 16, got 'tensor<15xi32>'}}
  %rows, %offsets, %row_of = moe.dispatch %ids {num_experts = 4 : i64}
      : tensor<8x2xi32> -> tensor<?xi32>, tensor<5xi32>, tensor<15xi32>
  return
}

// -----

func.func @dispatch_row_of_type(%ids: tensor<8x2xi32>) {
  // expected-error @+1 {{'row_of' must be a 1-D i32 tensor}}
  %rows, %offsets, %row_of = moe.dispatch %ids {num_experts = 4 : i64}
      : tensor<8x2xi32> -> tensor<?xi32>, tensor<5xi32>, tensor<16xi64>
  return
}

// -----

func.func @dispatch_row_tiles_without_shapes(%ids: tensor<8x2xi32>) {
  // expected-error @+1 {{'row_tiles' needs small_tile_rows, large_tile_rows and large_rows_per_expert}}
  %rows, %offsets, %tiles = moe.dispatch %ids {num_experts = 4 : i64,
      small_tile_rows = 16 : i64, large_tile_rows = 128 : i64}
      : tensor<8x2xi32> -> tensor<?xi32>, tensor<5xi32> row_tiles tensor<?xi32>
  return
}

// -----

func.func @dispatch_shapes_without_row_tiles(%ids: tensor<8x2xi32>) {
  // expected-error @+1 {{small_tile_rows, large_tile_rows and large_rows_per_expert describe the 'row_tiles' result, which the op does not return}}
  %rows, %offsets = moe.dispatch %ids {num_experts = 4 : i64,
      large_rows_per_expert = 8 : i64}
      : tensor<8x2xi32> -> tensor<?xi32>, tensor<5xi32>
  return
}

// -----

func.func @dispatch_row_tiles_static(%ids: tensor<8x2xi32>) {
  // expected-error @+1 {{'row_tiles' must have a dynamic size, got 'tensor<9xi32>'}}
  %rows, %offsets, %tiles = moe.dispatch %ids {num_experts = 4 : i64,
      small_tile_rows = 16 : i64, large_tile_rows = 128 : i64, large_rows_per_expert = 8 : i64}
      : tensor<8x2xi32> -> tensor<?xi32>, tensor<5xi32> row_tiles tensor<9xi32>
  return
}

// -----

func.func @dispatch_row_tiles_type(%ids: tensor<8x2xi32>) {
  // expected-error @+1 {{'row_tiles' must be a 1-D i32 tensor [1 + 2 * tiles], got 'tensor<?xi64>'}}
  %rows, %offsets, %tiles = moe.dispatch %ids {num_experts = 4 : i64,
      small_tile_rows = 16 : i64, large_tile_rows = 128 : i64, large_rows_per_expert = 8 : i64}
      : tensor<8x2xi32> -> tensor<?xi32>, tensor<5xi32> row_tiles tensor<?xi64>
  return
}

// -----

func.func @dispatch_row_tiles_zero_rows(%ids: tensor<8x2xi32>) {
  // expected-error @+1 {{attribute 'large_tile_rows' failed to satisfy constraint}}
  %rows, %offsets, %tiles = moe.dispatch %ids {num_experts = 4 : i64,
      small_tile_rows = 16 : i64, large_tile_rows = 0 : i64, large_rows_per_expert = 8 : i64}
      : tensor<8x2xi32> -> tensor<?xi32>, tensor<5xi32> row_tiles tensor<?xi32>
  return
}

// -----

// The row tiles of one dispatch do not schedule the rows of another.
func.func @row_tiles_of_other_dispatch(%x: tensor<8x16xbf16>, %w: tensor<4x32x16xbf16>,
                                       %ids: tensor<8x2xi32>, %other: tensor<8x2xi32>,
                                       %init: tensor<16x32xf32>) {
  %rows, %offsets, %tiles = moe.dispatch %ids {num_experts = 4 : i64,
      small_tile_rows = 16 : i64, large_tile_rows = 128 : i64, large_rows_per_expert = 8 : i64}
      : tensor<8x2xi32> -> tensor<16xi32>, tensor<5xi32> row_tiles tensor<?xi32>
  %rows2, %offsets2 = moe.dispatch %other {num_experts = 4 : i64}
      : tensor<8x2xi32> -> tensor<16xi32>, tensor<5xi32>
  // expected-error @+1 {{'row_tiles' must be a moe.row_tiles of this op's 'offsets' and 'rows', or the 'row_tiles' result of the moe.dispatch that returns them}}
  %y = moe.grouped_matmul ins(%x, %w, %offsets2 : tensor<8x16xbf16>,
      tensor<4x32x16xbf16>, tensor<5xi32>) rows(%rows2 : tensor<16xi32>)
      row_tiles(%tiles : tensor<?xi32>) outs(%init : tensor<16x32xf32>)
      {gather, k = 2 : i64} -> tensor<16x32xf32>
  return
}

// -----

func.func @combine_row_of_size(%ys: tensor<?x16xf32>, %rows: tensor<?xi32>,
                               %w: tensor<8x2xf32>, %row_of: tensor<17xi32>) {
  %init = tensor.empty() : tensor<8x16xf32>
  // expected-error @+1 {{'row_of' dimension 0 (T * k) must be 16, got 'tensor<17xi32>'}}
  %y = moe.combine ins(%ys, %rows, %w : tensor<?x16xf32>, tensor<?xi32>,
      tensor<8x2xf32>) row_of(%row_of : tensor<17xi32>)
      outs(%init : tensor<8x16xf32>) -> tensor<8x16xf32>
  return
}

// -----

func.func @row_tiles_offsets(%offsets: tensor<1xi32>, %rows: tensor<?xi32>) {
  // expected-error @+1 {{'offsets' must have at least 2 entries, got 'tensor<1xi32>'}}
  %t = moe.row_tiles %offsets, %rows {small_tile_rows = 16 : i64,
      large_tile_rows = 128 : i64, large_rows_per_expert = 64 : i64}
      : tensor<1xi32>, tensor<?xi32> -> tensor<?xi32>
  return
}

// -----

func.func @row_tiles_dynamic_offsets(%offsets: tensor<?xi32>, %rows: tensor<?xi32>) {
  // expected-error @+1 {{'offsets' dimension 0 (E + 1) must be static, got 'tensor<?xi32>'}}
  %t = moe.row_tiles %offsets, %rows {small_tile_rows = 16 : i64,
      large_tile_rows = 128 : i64, large_rows_per_expert = 64 : i64}
      : tensor<?xi32>, tensor<?xi32> -> tensor<?xi32>
  return
}

// -----

func.func @row_tiles_static(%offsets: tensor<5xi32>, %rows: tensor<?xi32>) {
  // expected-error @+1 {{'tiles' must have a dynamic size, got 'tensor<9xi32>'}}
  %t = moe.row_tiles %offsets, %rows {small_tile_rows = 16 : i64,
      large_tile_rows = 128 : i64, large_rows_per_expert = 64 : i64}
      : tensor<5xi32>, tensor<?xi32> -> tensor<9xi32>
  return
}

// -----

func.func @row_tiles_zero_rows(%offsets: tensor<5xi32>, %rows: tensor<?xi32>) {
  // expected-error @+1 {{attribute 'small_tile_rows' failed to satisfy constraint}}
  %t = moe.row_tiles %offsets, %rows {small_tile_rows = 0 : i64,
      large_tile_rows = 128 : i64, large_rows_per_expert = 64 : i64}
      : tensor<5xi32>, tensor<?xi32> -> tensor<?xi32>
  return
}

// -----

func.func @row_tiles_of_other_rows(%x: tensor<?x16xbf16>, %w: tensor<4x32x16xbf16>,
                                   %offsets: tensor<5xi32>, %rows: tensor<?xi32>,
                                   %other: tensor<?xi32>, %init: tensor<?x32xf32>) {
  %t = moe.row_tiles %offsets, %other {small_tile_rows = 16 : i64,
      large_tile_rows = 128 : i64, large_rows_per_expert = 64 : i64}
      : tensor<5xi32>, tensor<?xi32> -> tensor<?xi32>
  // expected-error @+1 {{'row_tiles' must be a moe.row_tiles of this op's 'offsets' and 'rows'}}
  %y = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x16xbf16>,
      tensor<4x32x16xbf16>, tensor<5xi32>) rows(%rows : tensor<?xi32>)
      row_tiles(%t : tensor<?xi32>) outs(%init : tensor<?x32xf32>)
      {gather, k = 2 : i64} -> tensor<?x32xf32>
  return
}

// -----

func.func @row_tiles_not_an_op(%x: tensor<?x16xbf16>, %w: tensor<4x32x16xbf16>,
                               %offsets: tensor<5xi32>, %rows: tensor<?xi32>,
                               %t: tensor<?xi32>, %init: tensor<?x32xf32>) {
  // expected-error @+1 {{'row_tiles' must be a moe.row_tiles of this op's 'offsets' and 'rows'}}
  %y = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x16xbf16>,
      tensor<4x32x16xbf16>, tensor<5xi32>) rows(%rows : tensor<?xi32>)
      row_tiles(%t : tensor<?xi32>) outs(%init : tensor<?x32xf32>)
      {gather, k = 2 : i64} -> tensor<?x32xf32>
  return
}

// -----

func.func @permute_words_wrong_width(%table: vector<16xi16>, %indices: vector<16xi16>) -> vector<16xi16> {
  // expected-error @+1 {{'moe.x86.permute_words' op operand #0 must be vector of 16-bit signless integer values of length 32}}
  %w = moe.x86.permute_words %table[%indices] : vector<16xi16>
  return %w : vector<16xi16>
}

//===- MoEOps.h - Operations of the moe dialect -----------------*- C++ -*-===//

#ifndef MOE_DIALECT_MOE_IR_MOEOPS_H
#define MOE_DIALECT_MOE_IR_MOEOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "moe/Dialect/MoE/IR/MoEAttrs.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"

#define GET_OP_CLASSES
#include "moe/Dialect/MoE/IR/MoEOps.h.inc"

namespace mlir::moe {

/// The tile rows and threshold of a schedule of row tiles: tiles of
/// `largeTileRows` rows where the rows per expert average at least
/// `largeRowsPerExpert`, else of `smallTileRows`.
struct RowTileShapes {
  int64_t smallTileRows, largeTileRows, largeRowsPerExpert;
};

/// The shapes of `tiles` where it is the schedule of the row tiles over
/// `offsets` and `rows`: a moe.row_tiles of them, or the `row_tiles` result
/// of the moe.dispatch that returns them. Else nullopt.
std::optional<RowTileShapes> rowTileShapesOver(Value tiles, Value offsets,
                                               Value rows);

/// The sizes of E experts' [K, N] weight matrices.
struct WeightShape {
  int64_t experts, columns, reduction;
  /// P, the columns of a panel in the `panels` and `panels_vnni` layouts
  /// (else 0).
  int64_t panelWidth;
};

/// The shape of `type`, a static tensor of weights in `layout`: [E, N, K]
/// (nk), [E, K, N] (kn), [E, N / P, K, P] (panels) or [E, N / P, K / 2, 2P]
/// (panels_vnni).
WeightShape weightShape(RankedTensorType type, RhsLayout layout);

/// Whether `type` is the element type of a quantized weight format
/// (f8E4M3FN; i8 for int8 and the packed 4-bit formats), which only a
/// `weight_quant` op may hold.
bool isQuantizedElementType(Type type);

/// Whether `format` packs two 4-bit weights per stored byte along K (mxfp4,
/// int4).
bool isPackedWeightFormat(WeightFormat format);

/// The shape of the weights `stored` describes, in weights rather than
/// stored elements: K doubles for the packed 4-bit formats.
WeightShape logicalWeightShape(WeightQuantAttr quant,
                               const WeightShape &stored);

/// Whether the scales (and zero points) of `weights` are in panels like the
/// weights: the weight-only formats in the panels layout.
bool hasPanelScales(WeightQuantAttr quant, const WeightShape &weights);

/// [E, ceil(N / bn), ceil(K / bk)], or [E, N / P, ceil(K / bk), P] where
/// hasPanelScales: the shape of the scales of `weights` quantized as `quant`
/// says.
SmallVector<int64_t> weightScaleShape(WeightQuantAttr quant,
                                      const WeightShape &weights);

/// Checks the quantization of one weight operand: its element type against
/// `quant` (or, without `quant`, that it is not quantized and has no
/// scales), the shape of `scales`, `inputScales` ([1], activation =
/// static only) and `zeroPoints` (int4 only). `shape` is the logical shape
/// (logicalWeightShape). Each name is the operand's, for the diagnostics.
LogicalResult verifyWeightQuantOperands(Operation *op, WeightQuantAttr quant,
                                        const WeightShape &shape, Value weights,
                                        StringRef weightsName, Value scales,
                                        StringRef scalesName, Value inputScales,
                                        StringRef inputScalesName,
                                        Value zeroPoints = {},
                                        StringRef zeroPointsName = {});

} // namespace mlir::moe

#endif // MOE_DIALECT_MOE_IR_MOEOPS_H

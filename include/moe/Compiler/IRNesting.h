//===- IRNesting.h - Refusing IR nested past the parser's stack -*- C++ -*-===//
//
// MLIR's parser recurses once per nested region, attribute list, dictionary
// or type: IR nested a few thousand levels deep exhausts the stack and the
// process dies (moe-opt and moe-compile segfaulted on 5000 nested regions).
// The tools measure the nesting of the text first, and refuse it past a
// limit far above any real module's (the project's tests nest at most 5)
// and far below what the stack holds, sanitized builds included.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_IRNESTING_H
#define MOE_COMPILER_IRNESTING_H

#include "llvm/ADT/StringRef.h"

#include <cstddef>
#include <optional>

namespace mlir::moe {

/// The deepest nesting of brackets the tools parse.
constexpr unsigned kMaxIRNesting = 256;

/// The offset in `text` of the first bracket ({, (, [ or <) that opens a
/// level past `limit`, or nullopt if none does. String literals and `//`
/// comments are skipped, and the `>` of `->` closes nothing.
std::optional<size_t> findExcessiveNesting(llvm::StringRef text,
                                           unsigned limit = kMaxIRNesting);

} // namespace mlir::moe

#endif // MOE_COMPILER_IRNESTING_H

//===- IRNesting.cpp - Refusing IR nested past the parser's stack ---------===//

#include "moe/Compiler/IRNesting.h"

using namespace llvm;

std::optional<size_t> mlir::moe::findExcessiveNesting(StringRef text,
                                                      unsigned limit) {
  unsigned depth = 0;
  for (size_t i = 0, n = text.size(); i < n; ++i) {
    char c = text[i];
    if (c == '"') {
      // A string literal, up to its closing quote (or the end of the text).
      for (++i; i < n && text[i] != '"'; ++i)
        if (text[i] == '\\')
          ++i;
    } else if (c == '/' && text.substr(i).starts_with("//")) {
      size_t end = text.find('\n', i);
      i = end == StringRef::npos ? n : end;
    } else if (c == '-' && text.substr(i).starts_with("->")) {
      ++i;
    } else if (c == '{' || c == '(' || c == '[' || c == '<') {
      if (++depth > limit)
        return i;
    } else if ((c == '}' || c == ')' || c == ']' || c == '>') && depth) {
      --depth;
    }
  }
  return std::nullopt;
}

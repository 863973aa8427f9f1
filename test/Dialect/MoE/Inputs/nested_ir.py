"""Prints IR nested `depth` levels deep, for deep-nesting.test.

Usage: nested_ir.py regions|array|type|commented DEPTH
- regions: scf.execute_region ops nested DEPTH deep in a function (each
  region ends with its scf.yield, so the module verifies);
- array: an attribute of DEPTH nested arrays;
- type: a function argument of DEPTH nested LLVM struct types;
- commented: `regions` after a comment full of brackets, in a function
  whose string attribute is full of them too; they count for nothing.
"""

import sys


def regions(depth: int) -> str:
    body = "scf.yield\n"
    for level in range(depth):
        body = "scf.execute_region {\n" + body + "}\n" + ("scf.yield\n" if level < depth - 1 else "")
    return "func.func @f() -> i32 {\n" + body + "%c = arith.constant 0 : i32\nreturn %c : i32\n}\n"


def main() -> None:
    kind, depth = sys.argv[1], int(sys.argv[2])
    if kind == "regions":
        print(regions(depth), end="")
    elif kind == "array":
        print("func.func @f() attributes {a = " + "[" * depth + "]" * depth + "} {\nreturn\n}")
    elif kind == "type":
        print("func.func @f(%a: " + "!llvm.struct<(" * depth + "i32" + ")>" * depth
              + ") {\nreturn\n}")
    elif kind == "commented":
        text = regions(depth).replace("func.func @f() -> i32 {",
                                      'func.func @f() -> i32 attributes {s = "'
                                      + "(" * 1000 + '"} {')
        print("// " + "{" * 1000 + "\n" + text, end="")
    else:
        sys.exit(f"unknown kind {kind!r}")


if __name__ == "__main__":
    main()

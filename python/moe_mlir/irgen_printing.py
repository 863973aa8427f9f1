"""How :mod:`moe_mlir.irgen` prints IR: attribute dictionaries from Python
values (the attribute kinds of each op family), tensor types, floats, and
one public function around an op's operands."""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

from . import reference

Dim = Optional[int]

# Attribute kinds: how a Python value is printed in an attribute dictionary.
_I64, _F64, _UNIT = "i64", "f64", "unit"


def _enum(mnemonic: str) -> str:
    return "enum:" + mnemonic


#: Routing attributes of ``moe.route`` and ``moe.layer`` (name -> kind).
ROUTING_ATTRS = {
    "scoring": _enum("scoring"),
    "n_group": _I64,
    "topk_group": _I64,
    "group_score": _enum("group_score"),
    "renormalize": _UNIT,
    "renorm_epsilon": _F64,
    "scale": _F64,
    "second_expert_policy": _enum("second_expert_policy"),
    "seed": _I64,
}

#: Capacity attributes of ``moe.dispatch`` and ``moe.layer``.
CAPACITY_ATTRS = {
    "capacity": _I64,
    "capacity_factor": _F64,
    "drop_policy": _enum("drop_policy"),
}

#: GLU attributes of ``moe.glu``, ``moe.grouped_matmul`` (with an epilogue) and ``moe.layer``.
GLU_ATTRS = {
    "glu_layout": _enum("glu_layout"),
    "alpha": _F64,
    "limit": _F64,
}

_ENUM_VALUES = {
    "scoring": reference.SCORINGS,
    "group_score": reference.GROUP_SCORES,
    "second_expert_policy": reference.SECOND_EXPERT_POLICIES,
    "drop_policy": reference.DROP_POLICIES,
    "activation": reference.ACTIVATIONS,
    "glu_layout": reference.GLU_LAYOUTS,
    "rhs_layout": reference.RHS_LAYOUTS,
}


# ----------------------------------------------------------------------------------------
# Printing helpers
# ----------------------------------------------------------------------------------------


def format_float(value: float) -> str:
    """Prints ``value`` so that MLIR parses it back as the same float64.

    17 significant digits round-trip any double. MLIR's lexer only reads a number as a
    float when it has a ``.`` before any exponent (``1e-20`` would lex as the integer 1),
    so one is inserted where Python leaves it out.
    """
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"attribute values must be finite, got {value!r}")
    text = format(value, ".17g")
    mantissa, sep, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + sep + exponent


def _dim(size: Dim) -> str:
    if size is None:
        return "?"
    size = int(size)
    if size < 0:
        raise ValueError(f"tensor sizes must be non-negative, got {size}")
    return str(size)


def tensor_type(shape: Sequence[Dim], element_type: str) -> str:
    """``tensor<...>`` text for ``shape`` (``None`` = dynamic) and an element type."""
    if not shape:
        return f"tensor<{element_type}>"
    return "tensor<" + "x".join(_dim(d) for d in shape) + "x" + element_type + ">"


def _attr_entry(name: str, kind: str, value) -> Optional[str]:
    if value is None:
        return None
    if kind == _UNIT:
        return name if value else None
    if kind == _I64:
        if isinstance(value, bool) or int(value) != value:
            raise TypeError(f"attribute {name} must be an integer, got {value!r}")
        return f"{name} = {int(value)} : i64"
    if kind == _F64:
        return f"{name} = {format_float(value)} : f64"
    mnemonic = kind.split(":", 1)[1]
    if value not in _ENUM_VALUES[mnemonic]:
        raise ValueError(f"{name} must be one of {_ENUM_VALUES[mnemonic]}, got {value!r}")
    return f"{name} = #moe.{mnemonic}<{value}>"


def _attr_dict(kinds: Mapping[str, str], values: Mapping[str, object]) -> str:
    """An attribute dictionary (with a leading space) or "" when every value is a default."""
    unknown = sorted(set(values) - set(kinds))
    if unknown:
        raise TypeError(f"unknown attributes {unknown}; expected some of {sorted(kinds)}")
    entries = [_attr_entry(name, kinds[name], values[name]) for name in kinds if name in values]
    entries = [e for e in entries if e is not None]
    return " {" + ", ".join(entries) + "}" if entries else ""


class _Function:
    """Accumulates the body of one ``func.func`` and prints it inside a module."""

    def __init__(self, name: str):
        self.name = name
        self.args: list[tuple[str, str]] = []
        self.lines: list[str] = []
        self.results: list[tuple[str, str]] = []
        self._names: set[str] = set()
        self._constants: dict[int, str] = {}

    def _fresh(self, base: str) -> str:
        name, n = base, 0
        while name in self._names:
            n += 1
            name = f"{base}{n}"
        self._names.add(name)
        return "%" + name

    def arg(self, name: str, type_: str) -> str:
        value = self._fresh(name)
        self.args.append((value, type_))
        return value

    def op(self, text: str, *results: str) -> tuple[str, ...]:
        """Emits ``text`` with fresh result names built from ``results``."""
        values = tuple(self._fresh(r) for r in results)
        prefix = (", ".join(values) + " = ") if values else ""
        self.lines.append(prefix + text)
        return values

    def index(self, value: int) -> str:
        if value not in self._constants:
            (self._constants[value],) = self.op(f"arith.constant {value} : index", f"c{value}")
        return self._constants[value]

    def empty(self, shape: Sequence[Dim], element_type: str,
              dynamic_sizes: Sequence[tuple[str, str, int]]) -> str:
        """``tensor.empty`` of ``shape``; each ``None`` takes the size of the next
        ``(value, type, dim)`` in ``dynamic_sizes``."""
        sizes = []
        dynamic = iter(dynamic_sizes)
        for d in shape:
            if d is None:
                value, type_, dim = next(dynamic)
                (size,) = self.op(f"tensor.dim {value}, {self.index(dim)} : {type_}", "dim")
                sizes.append(size)
        (init,) = self.op(f"tensor.empty({', '.join(sizes)}) : {tensor_type(shape, element_type)}",
                          "init")
        return init

    def ret(self, *values: tuple[str, str]) -> None:
        self.results.extend(values)

    def module(self) -> str:
        args = ", ".join(f"{v}: {t}" for v, t in self.args)
        types = [t for _, t in self.results]
        result_types = types[0] if len(types) == 1 else "(" + ", ".join(types) + ")"
        body = "".join(f"    {line}\n" for line in self.lines)
        values = ", ".join(v for v, _ in self.results)
        return (f"module {{\n  func.func @{self.name}({args}) -> {result_types} {{\n"
                f"{body}    return {values} : {', '.join(types)}\n  }}\n}}\n")


def _split(attrs: Mapping[str, object], *groups: Mapping[str, str]) -> list[dict]:
    """Splits keyword attributes among ``groups``; unknown names raise TypeError."""
    known = set().union(*groups)
    unknown = sorted(set(attrs) - known)
    if unknown:
        raise TypeError(f"unknown attributes {unknown}; expected some of {sorted(known)}")
    return [{n: v for n, v in attrs.items() if n in g} for g in groups]


def _check_dtype(dtype: str) -> str:
    if dtype not in ("f32", "bf16", "f16"):
        raise ValueError(f"element type must be f32, bf16 or f16, got {dtype!r}")
    return dtype


def _mul(a: Dim, b: int) -> Dim:
    return None if a is None else a * b

"""`--frames EXPR`: output frames as a small arithmetic expression of a manifest's lengths.

Variables: `L` (the length column: seconds of audio, pixels of width, feature frames), and for
images read from their headers `W` and `H`. Operators `+ - * / // % **`, parentheses, numbers,
and `floor`, `ceil`, `round`, `min`, `max`, `abs`. Evaluated on whole numpy columns at once; the
result is floored to whole frames. Anything else (names, attributes, calls of other functions)
is refused: the expression comes from a command line, not from trusted code.

Common model front ends:
  10 ms features, 4x conv subsampling    (NeMo Conformer)  `floor(L * 100) // 4 + 1`
  wav2vec2 / HuBERT on 16 kHz audio      (20 ms frames)    `floor((floor(L * 16000) - 400) / 320) + 1`
  CRNN on images resized to height 32, width pooled by 4   `W * 32 // H // 4`
"""
from __future__ import annotations

import ast
from collections.abc import Callable, Mapping

import numpy as np

from ctcdoctor.errors import UserInputError

FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "floor": np.floor, "ceil": np.ceil, "round": np.round, "abs": np.abs,
    "min": lambda *values: np.minimum.reduce(np.broadcast_arrays(*values)),
    "max": lambda *values: np.maximum.reduce(np.broadcast_arrays(*values)),
}
OPERATORS: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide, ast.Mod: np.mod, ast.Pow: lambda base, power: np.power(np.asarray(base, dtype=np.float64), power),
}
HINT = "Write e.g. --frames 'floor(L * 100) // 4 + 1': variables L (and W, H for images), + - * / // % **, floor ceil round min max abs."


class UnusableFrames(UserInputError):
    """`--frames` gives no whole number of frames for the record at `row` of the columns (a division by zero, a
    result that is not finite); the caller names its line."""

    def __init__(self, row: int, message: str, hint: str) -> None:
        super().__init__(message, hint)
        self.row = row


def _first(mask: np.ndarray, size: int) -> int:
    return int(np.flatnonzero(np.broadcast_to(mask, (size,)))[0])


class Frames:
    """A parsed `--frames` expression; call it with the columns it names."""

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            self.tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as error:
            raise UserInputError(f"--frames {text!r} is not an expression ({error.msg})", HINT) from error
        self.names = sorted({node.id for node in ast.walk(self.tree) if isinstance(node, ast.Name)} - set(FUNCTIONS))
        with np.errstate(all="ignore"):
            self._evaluate(self.tree, {name: np.ones(1) for name in self.names}, dry=True)

    def __call__(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        missing = [name for name in self.names if name not in columns]
        if missing:
            raise UserInputError(f"--frames {self.text!r} uses {', '.join(missing)}, which this manifest does not give",
                                 f"Use {', '.join(sorted(columns))}.")
        with np.errstate(all="ignore"):
            value = np.asarray(self._evaluate(self.tree, columns))
        size = max((len(column) for column in columns.values()), default=1)
        value = np.broadcast_to(value, (size,))
        if value.dtype.kind in "iu":
            return np.maximum(value, 0).astype(np.int64)
        value = value.astype(np.float64)
        if not np.isfinite(value).all():
            row = _first(~np.isfinite(value), size)
            raise UnusableFrames(row, f"--frames {self.text!r} gives {value[row]} frames for {self._values(columns, row)}",
                                 "Give a finite number of frames for every length; " + HINT[0].lower() + HINT[1:])
        return np.maximum(np.floor(value), 0).astype(np.int64)

    def _values(self, columns: Mapping[str, np.ndarray], row: int) -> str:
        """The variables of the expression at one record, e.g. `L = 1.61`."""
        values = {name: np.asarray(columns[name]).reshape(-1) for name in self.names}
        return ", ".join(f"{name} = {value[min(row, value.size - 1)]:g}" for name, value in values.items()) or "every record"

    def _divisor(self, node: ast.BinOp, right: np.ndarray, columns: Mapping[str, np.ndarray], dry: bool) -> None:
        """A division by zero is refused: numpy gives 0 (integers) or inf/NaN (floats), frames no model has."""
        zero = np.asarray(right) == 0
        if dry:
            if isinstance(right, (int, float)) and right == 0:  # a constant: refused as the expression is parsed
                raise UserInputError(f"--frames {self.text!r} divides by zero ({ast.unparse(node)})", HINT)
            return
        if zero.any():
            size = max((len(column) for column in columns.values()), default=1)
            row = _first(zero, size)
            raise UnusableFrames(row, f"--frames {self.text!r} divides by zero in {ast.unparse(node)} for "
                                 f"{self._values(columns, row)}",
                                 "Keep every divisor above 0 for these lengths; " + HINT[0].lower() + HINT[1:])

    def _evaluate(self, node: ast.AST, columns: Mapping[str, np.ndarray], dry: bool = False) -> np.ndarray:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value  # type: ignore[return-value]
        if isinstance(node, ast.Name) and node.id not in FUNCTIONS:
            if node.id not in ("L", "W", "H"):
                raise UserInputError(f"--frames {self.text!r}: unknown name {node.id!r}", HINT)
            return np.asarray(columns[node.id])  # whole-number columns stay integers: // and % are exact and fast
        if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
            left, right = self._evaluate(node.left, columns, dry), self._evaluate(node.right, columns, dry)
            if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)):
                self._divisor(node, right, columns, dry)
            return OPERATORS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self._evaluate(node.operand, columns, dry)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS and not node.keywords:
            return FUNCTIONS[node.func.id](*(self._evaluate(arg, columns, dry) for arg in node.args))
        raise UserInputError(f"--frames {self.text!r}: {ast.unparse(node)!r} is not allowed", HINT)

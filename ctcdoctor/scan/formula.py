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
        return np.where(np.isfinite(value), np.maximum(np.floor(value), 0), -1).astype(np.int64)

    def _evaluate(self, node: ast.AST, columns: Mapping[str, np.ndarray], dry: bool = False) -> np.ndarray:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value  # type: ignore[return-value]
        if isinstance(node, ast.Name) and node.id not in FUNCTIONS:
            if node.id not in ("L", "W", "H"):
                raise UserInputError(f"--frames {self.text!r}: unknown name {node.id!r}", HINT)
            return np.asarray(columns[node.id])  # whole-number columns stay integers: // and % are exact and fast
        if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
            return OPERATORS[type(node.op)](self._evaluate(node.left, columns, dry), self._evaluate(node.right, columns, dry))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self._evaluate(node.operand, columns, dry)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS and not node.keywords:
            return FUNCTIONS[node.func.id](*(self._evaluate(arg, columns, dry) for arg in node.args))
        raise UserInputError(f"--frames {self.text!r}: {ast.unparse(node)!r} is not allowed", HINT)

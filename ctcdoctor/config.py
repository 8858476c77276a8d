"""`[tool.ctcdoctor]` in the user's pyproject.toml; command-line flags win over it."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ctcdoctor.errors import UserInputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

KNOWN_KEYS = {"fail-on", "select", "ignore", "max-batches", "scan-batches", "device"}


def find_pyproject(start: Path) -> Path | None:
    folder = start.resolve()
    if folder.is_file():
        folder = folder.parent
    for candidate in (folder, *folder.parents):
        path = candidate / "pyproject.toml"
        if path.is_file():
            return path
    return None


def load_config(spec: str) -> tuple[dict[str, Any], Path | None]:
    """Settings from the nearest pyproject.toml with a [tool.ctcdoctor] table (spec's folder, then cwd)."""
    module_part = spec.rpartition(":")[0] if spec.rpartition(":")[2].isidentifier() else spec
    starts = []
    if module_part.endswith(".py"):
        starts.append(Path(module_part).parent)
    starts.append(Path.cwd())
    for start in starts:
        path = find_pyproject(start)
        if path is None:
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise UserInputError(f"cannot read {path}: {error}", "Fix the TOML syntax in pyproject.toml.") from error
        table = data.get("tool", {}).get("ctcdoctor")
        if table is None:
            continue
        unknown = set(table) - KNOWN_KEYS
        if unknown:
            raise UserInputError(
                f"{path}: unknown keys in [tool.ctcdoctor]: {', '.join(sorted(unknown))}",
                f"Known keys: {', '.join(sorted(KNOWN_KEYS))}.",
            )
        validate(table, path)
        return table, path
    return {}, None


def as_code_list(value: Any) -> list[str]:
    """Codes from a flag repeated, comma-separated, or a TOML list."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    codes = [part.strip().upper() for item in items for part in str(item).split(",") if part.strip()]
    for code in codes:
        if not code.startswith("CTC"):
            raise UserInputError(f"{code!r} is not a check code or prefix", "Codes look like CTC001; a prefix such as CTC0 selects a group.")
    return codes


def validate(table: dict[str, Any], path: Path) -> None:
    """Each key's type and range, named with the file, so a typo is exit 2 and not a crash."""

    def bad(key: str, why: str, fix: str) -> UserInputError:
        return UserInputError(f"{path}: [tool.ctcdoctor] {key} = {table[key]!r} {why}", fix)

    if "fail-on" in table and table["fail-on"] not in ("error", "warning", "info"):
        raise bad("fail-on", "is not a severity", 'Use "error", "warning" or "info".')
    for key in ("max-batches", "scan-batches"):
        value = table.get(key)
        if key in table and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise bad(key, "is not a whole number >= 1", f"Write e.g. {key} = 2 (no quotes).")
    for key in ("select", "ignore"):
        value = table.get(key)
        if key in table and not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(item, str) for item in value))):
            raise bad(key, "is not a list of codes", f'Write e.g. {key} = ["CTC080"].')
    if "device" in table and not isinstance(table["device"], str):
        raise bad("device", "is not a device name", 'Write e.g. device = "cpu".')

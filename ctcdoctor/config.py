"""One set of settings for every command: defaults, then `[tool.ctcdoctor]` in the user's
pyproject.toml, then command-line flags (flags win).

Every command resolves its settings here, so `fail-on`, `select` and `ignore` mean the same
thing everywhere, and a typo in a code is exit 2 everywhere, as ruff does.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ctcdoctor.errors import UserInputError
from ctcdoctor.findings import Severity

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Settings:
    """What every command reads. Command-specific flags live with their command."""

    fail_on: Severity = Severity.ERROR
    """Exit 1 when a finding is at or above this severity."""
    select: tuple[str, ...] = ()
    """Codes or prefixes to run (empty: all)."""
    ignore: tuple[str, ...] = ()
    """Codes or prefixes to skip and drop."""
    max_batches: int = 2
    """Batches the model is run on (`check`)."""
    scan_batches: int = 32
    """Batches the label and length checks read (`check`)."""
    device: str | None = None
    """Where the model (a copy of it) runs; None: where it is (`check`) or auto (`overfit`)."""
    timeout: float | None = None
    """Wall-clock seconds the whole command may take; None: no limit."""
    seed: int = 0
    """Seed of torch, numpy and random before build() is called (reports are reproducible)."""
    config_path: Path | None = None
    """The pyproject.toml whose [tool.ctcdoctor] table applied, if any."""


#: `[tool.ctcdoctor]` key -> Settings field.
KEYS = {"fail-on": "fail_on", "select": "select", "ignore": "ignore", "max-batches": "max_batches",
        "scan-batches": "scan_batches", "device": "device", "timeout": "timeout", "seed": "seed"}


def find_pyproject(start: Path) -> Path | None:
    folder = start.resolve()
    if folder.is_file():
        folder = folder.parent
    for candidate in (folder, *folder.parents):
        path = candidate / "pyproject.toml"
        if path.is_file():
            return path
    return None


def spec_folder(spec: str) -> Path | None:
    """The folder of a `path/to/file.py[:function]` spec, where its pyproject.toml is looked for first."""
    module_part = spec.rpartition(":")[0] if spec.rpartition(":")[2].isidentifier() else spec
    return Path(module_part).parent if module_part.endswith(".py") else None


def _read_table(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserInputError(f"cannot read {path}: it is not UTF-8 ({error.reason} at byte {error.start})",
                             "Save pyproject.toml as UTF-8.") from None
    except OSError as error:
        raise UserInputError(f"cannot read {path}: {error.strerror or error}", "Check the file's permissions.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UserInputError(f"cannot read {path}: {error}", "Fix the TOML syntax in pyproject.toml.") from error
    tool = data.get("tool", {})
    if not isinstance(tool, dict):
        raise UserInputError(f"{path}: `tool` is a {type(tool).__name__}, not a table", "Write [tool.ctcdoctor] as a table.")
    table = tool.get("ctcdoctor")
    if table is not None and not isinstance(table, dict):
        raise UserInputError(
            f"{path}: [tool] ctcdoctor = {table!r} is not a table",
            'Write the settings as a table: [tool.ctcdoctor] then fail-on = "warning" and so on.',
        )
    return table


def load_config(*starts: Path | None) -> tuple[dict[str, Any], Path | None]:
    """The [tool.ctcdoctor] table of the nearest pyproject.toml that has one, searching from each start in turn."""
    for start in [*starts, Path.cwd()]:
        if start is None:
            continue
        path = find_pyproject(start)
        if path is None:
            continue
        table = _read_table(path)
        if table is None:
            continue
        unknown = set(table) - set(KEYS)
        if unknown:
            raise UserInputError(
                f"{path}: unknown keys in [tool.ctcdoctor]: {', '.join(sorted(unknown))}",
                f"Known keys: {', '.join(sorted(KEYS))}.",
            )
        validate(table, path)
        return table, path
    return {}, None


def as_code_list(value: Any, where: str = "--select/--ignore") -> tuple[str, ...]:
    """Codes from a flag repeated, comma-separated, or a TOML list; each must name a known code or prefix."""
    from ctcdoctor.registry import unknown_codes

    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    codes = tuple(part.strip().upper() for item in items for part in str(item).split(",") if part.strip())
    malformed = [code for code in codes if not code.startswith("CTC")]
    unknown = malformed or unknown_codes(codes)
    if unknown:
        raise UserInputError(
            f"{where}: {', '.join(repr(code) for code in unknown)} matches no check code",
            "Codes look like CTC001; a prefix such as CTC0 selects a group. `ctcdoctor codes` lists them all.",
        )
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
        if key in table:
            as_code_list(value, f"{path}: [tool.ctcdoctor] {key}")
    if "device" in table and not isinstance(table["device"], str):
        raise bad("device", "is not a device name", 'Write e.g. device = "cpu".')
    value = table.get("timeout")
    if "timeout" in table and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
        raise bad("timeout", "is not a number of seconds > 0", "Write e.g. timeout = 600 (no quotes).")
    value = table.get("seed")
    if "seed" in table and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise bad("seed", "is not a whole number >= 0", "Write e.g. seed = 0 (no quotes).")


def resolve_settings(*starts: Path | None, **flags: Any) -> Settings:
    """Defaults, then the config file found from `starts` (then the working directory), then the flags given (not None)."""
    table, path = load_config(*starts)
    values: dict[str, Any] = {}
    for key, name in KEYS.items():
        if key in table:
            values[name] = table[key]
    for name, value in flags.items():
        if name not in {field.name for field in fields(Settings)}:
            raise TypeError(f"unknown setting {name!r}")
        if value is not None and value != [] and value != ():
            values[name] = value
    if "fail_on" in values:
        values["fail_on"] = Severity.parse(str(getattr(values["fail_on"], "value", values["fail_on"])))
    for name in ("select", "ignore"):
        if name in values:
            values[name] = as_code_list(values[name])
    return replace(Settings(), config_path=path, **values)

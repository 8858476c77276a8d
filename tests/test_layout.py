"""The house rules of DESIGN §1, enforced by walking the imports of every module.

- no import cycles between modules (module-level imports; `if TYPE_CHECKING:` blocks excluded);
- `ctc/` and `kernels/` import nothing else of ctcdoctor;
- `checks/` never imports rich, matplotlib or typer;
- `measure/` never imports `render/` or `cli/`;
- nothing outside `cli/` imports `cli/` (but `python -m ctcdoctor`'s `__main__`);
- optional dependencies are imported inside functions only, never at module level, so
  `import ctcdoctor` and every command work without them;
- no function in the package is longer than a reader can hold.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from ctchelpers import OPTIONAL, ROOT, WITHOUT_OPTIONAL

MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[0] == "checks":
        parts = ["ctcdoctor", *parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def source_files() -> list[Path]:
    return sorted([*ROOT.glob("ctcdoctor/**/*.py"), *ROOT.glob("checks/*.py")])


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    top_level: bool
    """At module level (outside functions and `if TYPE_CHECKING:`)."""
    line: int


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> list[Import]:
    name = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[Import] = []

    def visit(node: ast.AST, top_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                for item in child.body:
                    visit(ast.Module(body=[item], type_ignores=[]), False)
                for item in child.orelse:
                    visit(ast.Module(body=[item], type_ignores=[]), top_level)
            elif isinstance(child, ast.Import):
                found.extend(Import(name, alias.name, top_level, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append(Import(name, child.module, top_level, child.lineno))
                # `from ctcdoctor.x import y` may import the submodule ctcdoctor.x.y
                found.extend(Import(name, f"{child.module}.{alias.name}", top_level, child.lineno) for alias in child.names)
            else:
                visit(child, top_level)

    visit(tree, True)
    return found


ALL_IMPORTS = [item for path in source_files() for item in imports_of(path)]
MODULES = {module_name(path) for path in source_files()}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_walker_sees_the_package():
    assert "ctcdoctor.engine" in MODULES and "ctcdoctor.checks.lengths" in MODULES
    assert any(item.imported == "ctcdoctor.registry" for item in ALL_IMPORTS)


def test_no_import_cycles():
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for item in ALL_IMPORTS:
        if item.top_level and item.imported in MODULES and item.imported != item.importer:
            graph[item.importer].add(item.imported)
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                dfs(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(MODULES):
        if module not in state:
            dfs(module)


def _violations(rule) -> list[str]:
    return [f"{item.importer}:{item.line} imports {item.imported}" for item in ALL_IMPORTS if rule(item)]


def test_ctc_and_kernels_import_nothing_else_of_ctcdoctor():
    def rule(item: Import) -> bool:
        inside = _within(item.importer, "ctcdoctor.ctc") or _within(item.importer, "ctcdoctor.kernels")
        other = _within(item.imported, "ctcdoctor") and not (
            _within(item.imported, "ctcdoctor.ctc") or _within(item.imported, "ctcdoctor.kernels")
        )
        return inside and other

    assert _violations(rule) == []


def test_checks_never_import_rendering_libraries():
    def rule(item: Import) -> bool:
        return _within(item.importer, "ctcdoctor.checks") and item.imported.split(".")[0] in ("rich", "matplotlib", "typer")

    assert _violations(rule) == []


def test_measure_never_imports_render_or_cli():
    def rule(item: Import) -> bool:
        return _within(item.importer, "ctcdoctor.measure") and (
            _within(item.imported, "ctcdoctor.render") or _within(item.imported, "ctcdoctor.cli")
        )

    assert _violations(rule) == []


def test_nothing_imports_the_cli():
    def rule(item: Import) -> bool:
        return (_within(item.imported, "ctcdoctor.cli") and not _within(item.importer, "ctcdoctor.cli")
                and item.importer != "ctcdoctor.__main__")

    assert _violations(rule) == []


#: The only packages whose modules may import an optional dependency at module level: the Triton
#: kernels and the framework adapters, each of which is itself imported lazily (see below).
OPTIONAL_HOMES = ("ctcdoctor.kernels", "ctcdoctor.integrations")


def test_optional_dependencies_are_imported_lazily():
    def rule(item: Import) -> bool:
        home = any(_within(item.importer, package) for package in OPTIONAL_HOMES)
        return item.top_level and item.imported.split(".")[0] in OPTIONAL and not home

    assert _violations(rule) == []


def test_modules_that_need_an_optional_dependency_are_imported_lazily():
    def rule(item: Import) -> bool:
        heavy = [package for package in OPTIONAL_HOMES if _within(item.imported, package)]
        return item.top_level and bool(heavy) and not any(_within(item.importer, package) for package in heavy) \
            and item.imported not in OPTIONAL_HOMES

    assert _violations(rule) == []


#: Files whose long functions are being split in work in flight (the overfit trainer and diagnosis,
#: the CTC argument normaliser and the Triton kernels). This tuple must be empty when that lands.
PENDING: tuple[str, ...] = ()


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of the body, docstring and signature excluded: a command's long option list reads
    as a table, its body must read as a function."""
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) and len(body) > 1:
        body = body[1:]
    return (node.end_lineno or node.lineno) - body[0].lineno + 1


def test_functions_stay_short():
    long: list[str] = []
    for path in ROOT.glob("ctcdoctor/**/*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = _body_lines(node)
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    long = [item for item in long if not item.split(":")[0].endswith(PENDING)]
    assert long == [], "functions over ~60 lines:\n" + "\n".join(sorted(long))


def test_top_level_stays_small():
    entries = [p.name for p in (ROOT / "ctcdoctor").iterdir() if p.name != "__pycache__"]
    assert len(entries) <= 24, sorted(entries)


@pytest.mark.parametrize("argv", WITHOUT_OPTIONAL, ids=[argv[0] for argv in WITHOUT_OPTIONAL])
def test_commands_work_without_the_optional_dependencies(without_optional_dependencies, argv):
    marks, output = without_optional_dependencies
    assert argv[0] in marks, output  # the interpreter died before this command ended
    assert marks[argv[0]] == {"code": 0}, f"{argv}: {marks[argv[0]]}\n{output}"

def test_package_imports_without_triton(without_optional_dependencies):
    # A CPU-only install has no triton: the package must still import and say so. ctchelpers.SNIPPETS["kernels"], run
    # in a fresh interpreter in which triton (and every other optional dependency) cannot be imported.
    marks, output = without_optional_dependencies
    assert "kernels" in marks and marks["kernels"]["code"] == 0, marks.get("kernels", {}).get("error") or output

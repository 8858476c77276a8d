"""The command line: `app` (Typer) and `main(argv) -> int`. Nothing else in ctcdoctor imports this package."""

from ctcdoctor.cli.app import app, main

__all__ = ["app", "main"]

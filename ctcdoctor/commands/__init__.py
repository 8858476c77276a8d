"""One module per extra CLI command (`overfit`, `scan`, `labels`, `simulate`).

Each module registers its command on `ctcdoctor.cli.app` with `@app.command()` and,
like cli.py, imports torch only inside the command body. `ctcdoctor.cli` imports every
module here, so adding a command never means editing cli.py.
"""

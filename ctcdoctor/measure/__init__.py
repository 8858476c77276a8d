"""What the checks ask for by name, computed lazily by the engine.

Each module registers providers with `@provides(name)`; file names mirror `checks/`
(`measure/lengths.py` computes what `checks/lengths.py` judges). Nothing here decides whether
a set-up is healthy, and nothing here imports the renderers or the CLI.
"""

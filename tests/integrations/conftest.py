"""tests/integrations: the tiny CTC task (tinyctc.py) is importable as a module of its own."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

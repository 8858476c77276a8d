"""`python -m ctcdoctor.cli` is `python -m ctcdoctor`."""

import sys

from ctcdoctor.cli import main

sys.exit(main())

"""`python -m ctcdoctor ...` (and `torchrun ... -m ctcdoctor ...`) runs the command line."""
import sys

from ctcdoctor.cli import main

sys.exit(main())

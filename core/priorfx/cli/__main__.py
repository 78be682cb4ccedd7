"""`python -m priorfx.cli`: the CLI without its console script (what an installer records
when no `priorfx` executable sits beside the interpreter)."""
import sys

from priorfx.cli import main

sys.exit(main())

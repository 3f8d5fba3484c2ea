"""`python -m mstui` runs the command-line entry point."""

import sys

from mstui.cli import main

sys.exit(main())

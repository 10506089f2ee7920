"""`python -m speeltuin.cli`: the same as the `speeltuin` command."""
import sys

from speeltuin.cli import main

sys.exit(main())

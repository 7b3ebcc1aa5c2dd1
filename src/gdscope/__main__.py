"""``python -m gdscope``: the ``gdscope`` command (``cli.main``, which handles Ctrl-C for the
program; importing the package does not)."""

import sys

from gdscope.cli import main

sys.exit(main())

"""``python -m gdscope``: the ``gdscope`` command."""

import sys

from gdscope.cli import main

sys.exit(main())

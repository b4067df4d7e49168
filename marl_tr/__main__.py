"""``python -m marl_tr``: the ``marl-tr`` command line."""

import sys

from marl_tr.cli import main

sys.exit(main())

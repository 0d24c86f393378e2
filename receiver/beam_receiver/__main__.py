"""`python -m beam_receiver` is the `beam-receiver` console script."""

from __future__ import annotations

import sys

from beam_receiver.cli import main

sys.exit(main())

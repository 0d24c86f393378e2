import sys

from beam_agent.cli import main

sys.exit(main())

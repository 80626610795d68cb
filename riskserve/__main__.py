"""`python -m riskserve` (the `riskserve` command without its console script)."""

import sys

from riskserve.cli import main

sys.exit(main())

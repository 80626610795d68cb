"""`python -m riskserve.monitoring` (also `riskserve monitor`)."""

import sys

from riskserve.monitoring.cli import main

sys.exit(main())

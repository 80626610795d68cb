"""`python -m monitoring` (also `riskserve monitor`)."""

import sys

from monitoring.cli import main

sys.exit(main())

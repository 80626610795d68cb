"""The training job (`python -m training`): candidates, competition, ONNX export."""

import os

# LightGBM (and scikit-learn's compiled parts) run on OpenMP, whose idle threads spin
# by default. On this 2-core machine with other work running, an 800-tree fit on
# 140,000 rows took 301 s with 2 threads spinning, 31 s with 1 thread, and 14 s with 2
# threads waiting passively. The OpenMP runtime reads this once, when it is loaded, so
# it is set when the training package is first imported; a user's own value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

"""The feature layer: raw events in, the models' features out, the same way online
(a transformer, per request) and offline (training sets by point-in-time joins).

`riskserve.features.card` holds the fraud features as plain functions over a card's
state; `riskserve.features.repo` the Feast definitions (entities, feature views,
on-demand views, push sources) that serve and train from them.
"""

import importlib
import os

# Importing Feast sets PROMETHEUS_MULTIPROC_DIR and PROMETHEUS_MULTIPROCESS_DIR in
# os.environ (feast/metrics.py, for its Gunicorn workers) to a folder it deletes at exit.
# Every server this process starts afterwards (a predictor a test or the demo starts)
# would inherit them and keep its metrics in files there, and prometheus_client,
# imported after them, would too in this process. So prometheus_client is imported
# first and the environment is put back as it was once Feast has been imported.
# Feast makes that folder (/tmp/feast_metrics_*) only when the variable is unset, and
# removes it at exit: a SIGKILLed process left one behind each time. Given a name
# (os.devnull: nothing can be written there, and Feast removes only a folder it made),
# it makes none; it would write there only for its own metrics server, never started.
_MULTIPROCESS_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")
_before = {name: os.environ.get(name) for name in _MULTIPROCESS_VARIABLES}
importlib.import_module("prometheus_client")  # its value class is chosen at import
if _before["PROMETHEUS_MULTIPROCESS_DIR"] is None:
    os.environ["PROMETHEUS_MULTIPROCESS_DIR"] = os.devnull
importlib.import_module("feast.metrics")

for _name, _value in _before.items():
    if _value is None:
        os.environ.pop(_name, None)
    else:
        os.environ[_name] = _value

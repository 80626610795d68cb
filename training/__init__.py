"""The training job (`python -m riskserve.training`): candidates, competition, ONNX export."""

from riskserve.training.settings import passive_openmp_threads

passive_openmp_threads()

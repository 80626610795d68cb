"""The training job (`python -m training`): candidates, competition, ONNX export."""

from training.settings import passive_openmp_threads

passive_openmp_threads()

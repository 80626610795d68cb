"""The rollout tests run against the local platform: its fixtures, shared."""

from tests.localplatform.conftest import model_dirs, platform

__all__ = ["model_dirs", "platform"]

"""The `rendered` fixture: one render (tool x configuration) per test."""

from __future__ import annotations

import pytest

from tests.k8s.k8s_render import RENDER_IDS, Render, render


@pytest.fixture(params=RENDER_IDS)
def rendered(request: pytest.FixtureRequest) -> Render:
    source, configuration = request.param.split(":", 1)
    return render(source, configuration)

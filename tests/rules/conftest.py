"""Fixtures of the rule-library tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rolenrules.rules import plugins, registry


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Undo whatever a test registers (plugins load into the process-wide registry)."""
    types, origins, loaded = dict(registry.REGISTRY), dict(registry.PLUGIN_ORIGINS), dict(plugins._LOADED)
    yield
    for name, saved in ((registry.REGISTRY, types), (registry.PLUGIN_ORIGINS, origins), (plugins._LOADED, loaded)):
        name.clear()
        name.update(saved)
    registry._link()

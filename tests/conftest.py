"""Shared test set-up.

Tests that need root and network namespaces carry ``@pytest.mark.root``.
Without root they are skipped with a reason instead of failing, so the suite
runs anywhere; CI runs as root and runs them all.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(
        reason="needs root (network namespaces, Mininet, tracing); CI runs as root"
    )
    for item in items:
        if item.get_closest_marker("root") is not None:
            item.add_marker(skip)

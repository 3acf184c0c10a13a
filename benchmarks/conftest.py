"""Benchmark-suite fixtures: skip `gpu` rows without a usable device, as tests/ does."""

import pytest

from fastconv.backend import gpu_status


def pytest_collection_modifyitems(config, items):
    available, reason = gpu_status()
    if available:
        return
    skip = pytest.mark.skip(reason=f"no usable GPU: {reason}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

"""The `gpu` marker's skip rule, for tests/ and benchmarks/ alike."""

import pytest

from fastconv.backend import gpu_status


def pytest_collection_modifyitems(config, items):
    """Skip `gpu`-marked items, with the reason, when no CUDA device is usable."""
    available, reason = gpu_status()
    if available:
        return
    skip = pytest.mark.skip(reason=f"no usable GPU: {reason}")
    for item in items:
        if item.get_closest_marker("gpu"):  # not keywords: a parametrize id "gpu" is one too
            item.add_marker(skip)

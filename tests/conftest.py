"""Shared test fixtures: the torch oracle (the `gpu` skip rule is in the root conftest.py)."""

import os
import sys

import pytest


def require_torch():
    """Import torch, the test oracle; skip without it unless FASTCONV_REQUIRE_TORCH=1."""
    try:
        import torch
    except ImportError:
        if os.environ.get("FASTCONV_REQUIRE_TORCH") == "1":
            pytest.fail("FASTCONV_REQUIRE_TORCH=1 but torch is not installed: the oracle would vanish")
        pytest.skip("torch is not installed (the PyTorch oracle is optional outside CI)")
    torch.set_num_threads(1)
    return torch


@pytest.fixture
def torch():
    return require_torch()


def pytest_terminal_summary(terminalreporter):
    """Quote the PyTorch comparisons (case count, worst relative error per dtype) for closing notes."""
    oracle = sys.modules.get("torch_oracle")  # tests/torch_oracle.py, when a test used it
    for line in oracle.summary_lines() if oracle else ():
        terminalreporter.write_line(line)

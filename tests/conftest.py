import os
from pathlib import Path

import pytest
import torch

pytest.register_assert_rewrite("checkers")  # the shared asserts of the exercise tests


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """MNIST's folder: $VITLIB_DATA, as CI sets it. Tests that need the real data skip without it."""
    root = os.environ.get("VITLIB_DATA")
    if not root or not (Path(root) / "MNIST" / "raw").is_dir():
        pytest.skip("set VITLIB_DATA to a folder holding MNIST/raw to run the data tests")
    return Path(root)

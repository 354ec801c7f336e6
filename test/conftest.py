"""Shared pytest fixtures: tiny Qwen3-VL and Qwen2.5-VL checkpoints, built once per session.

No ROS imports here: the core's tests must run without a ROS installation.
"""

from pathlib import Path

import pytest


@pytest.fixture(scope='session')
def tiny_qwen3_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a tiny random Qwen3-VL (Cosmos-Reason2 layout) checkpoint."""
    from cosmos_reason_ros.core.modes import ModelFamily
    from cosmos_reason_ros.core.tiny_model import build_tiny_checkpoint

    root = tmp_path_factory.mktemp('tiny_models')
    return build_tiny_checkpoint(root / 'qwen3_vl', ModelFamily.QWEN3_VL)


@pytest.fixture(scope='session')
def tiny_qwen25_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a tiny random Qwen2.5-VL (Cosmos-Reason1 layout) checkpoint."""
    from cosmos_reason_ros.core.modes import ModelFamily
    from cosmos_reason_ros.core.tiny_model import build_tiny_checkpoint

    root = tmp_path_factory.mktemp('tiny_models')
    return build_tiny_checkpoint(root / 'qwen2_5_vl', ModelFamily.QWEN2_5_VL)

"""Shared pytest fixtures: a tiny checkpoint of each supported family, built once per session.

No ROS imports here: the core's tests must run without a ROS installation.
"""

from pathlib import Path

import pytest


def _tiny_checkpoint(factory: pytest.TempPathFactory, family_name: str) -> Path:
    from cosmos_reason_ros.core.answers.modes import ModelFamily
    from cosmos_reason_ros.demo.tiny_model import build_tiny_checkpoint

    return build_tiny_checkpoint(factory.mktemp('tiny_models') / family_name,
                                 ModelFamily(family_name))


@pytest.fixture(scope='session')
def tiny_qwen3_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a tiny random Qwen3-VL (Cosmos-Reason2 layout) checkpoint."""
    return _tiny_checkpoint(tmp_path_factory, 'qwen3_vl')


@pytest.fixture(scope='session')
def tiny_qwen25_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a tiny random Qwen2.5-VL (Cosmos-Reason1 layout) checkpoint."""
    return _tiny_checkpoint(tmp_path_factory, 'qwen2_5_vl')


@pytest.fixture(scope='session')
def tiny_edge_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a tiny random Cosmos3-Edge reasoner checkpoint (Nemotron-style tokenizer)."""
    return _tiny_checkpoint(tmp_path_factory, 'cosmos3_edge')


@pytest.fixture(scope='session')
def tiny_omni_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a tiny random Cosmos3-Omni (Nano/Super layout) reasoner checkpoint."""
    return _tiny_checkpoint(tmp_path_factory, 'cosmos3_omni')

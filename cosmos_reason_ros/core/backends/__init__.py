"""Backends turn a prompt and frames into generated text: local transformers or a remote server."""

from cosmos_reason_ros.core.backends.base import (
    Backend,
    GenerationRequest,
    GenerationResult,
    Prompt,
    Sampling,
    StreamCallback,
)
from cosmos_reason_ros.core.backends.factory import BackendSettings, create_backend

__all__ = [
    'Backend', 'BackendSettings', 'GenerationRequest', 'GenerationResult', 'Prompt', 'Sampling',
    'StreamCallback', 'create_backend',
]

"""Pick and build the backend a configuration asks for: local transformers, a remote server,
or a remote server with a local model standing by (remote.fallback_local).

The local backend (and so torch) is imported only when it is chosen.
"""

from collections.abc import Mapping
import dataclasses

from cosmos_reason_ros.core.backends.base import Backend
from cosmos_reason_ros.core.backends.remote_config import RemoteConfig
from cosmos_reason_ros.core.config import ModelConfig
from cosmos_reason_ros.core.errors import ModelLoadError

TRANSFORMERS = 'transformers'
OPENAI = 'openai'
BACKENDS = (TRANSFORMERS, OPENAI)


@dataclasses.dataclass(frozen=True)
class BackendSettings:
    """Which backend serves the model, with the settings of each kind."""

    backend: str = TRANSFORMERS
    """transformers: the checkpoint runs in this process; openai: an OpenAI-compatible server
    (vLLM, NVIDIA NIM) runs it."""
    model: ModelConfig = ModelConfig()
    """Settings of the local backend."""
    remote: RemoteConfig = RemoteConfig()
    """Settings of the remote backend."""

    @property
    def model_name(self) -> str:
        """The model this configuration serves: the checkpoint, or the served model's name."""
        return self.remote.served_model if self.backend == OPENAI else self.model.model

    @property
    def max_concurrent(self) -> int:
        """Goals the backend can work on at once: a local model one, a server several."""
        return self.remote.max_concurrent if self.backend == OPENAI else 1


def create_backend(settings: BackendSettings, *,
                   environ: Mapping[str, str] | None = None) -> Backend:
    """Build the configured backend (not loaded yet: call load()).

    Args:
        settings: Which backend, and its settings.
        environ: Where to read the API key variable that settings.remote.api_key_env names
            (pass os.environ); the core reads no environment on its own.

    Raises:
        ModelLoadError: an unknown backend name, an unusable remote setting, or
            remote.fallback_local without backend openai or without a local model.
    """
    if settings.backend == TRANSFORMERS:
        if settings.remote.fallback_local:
            raise ModelLoadError(
                'remote.fallback_local is a last resort of backend openai (a local model '
                'answering when every server endpoint is down); with backend transformers the '
                'model runs here already: set remote.fallback_local false')
        return _local_backend(settings.model)
    if settings.backend == OPENAI:
        from cosmos_reason_ros.core.backends.openai_backend import OpenAIBackend

        name = settings.remote.api_key_env
        api_key = (environ or {}).get(name) if name else None
        remote = OpenAIBackend(settings.remote, api_key=api_key)
        if not settings.remote.fallback_local:
            return remote
        if not settings.model.model.strip():
            raise ModelLoadError(
                'remote.fallback_local needs a local model: set model to a checkpoint (hub id '
                "or directory) of the served model's family, with device and dtype for it")
        from cosmos_reason_ros.core.backends.local_fallback import LocalFallbackBackend

        return LocalFallbackBackend(remote, _local_backend(settings.model))
    raise ModelLoadError(f"unknown backend '{settings.backend}': use one of "
                         + ', '.join(BACKENDS))


def _local_backend(model: ModelConfig) -> Backend:
    """The transformers backend for `model`, torch imported only now.

    Raises:
        ModelLoadError: torch, torchvision or transformers is not installed.
    """
    try:
        from cosmos_reason_ros.core.backends.transformers_backend import TransformersBackend
    except ImportError as error:
        raise ModelLoadError(
            f'the transformers backend needs torch, torchvision and transformers ({error}): '
            "pip install 'cosmos_reason_ros[model]', or use backend openai") from None
    return TransformersBackend(model)


__all__ = ['BACKENDS', 'BackendSettings', 'OPENAI', 'TRANSFORMERS', 'create_backend']

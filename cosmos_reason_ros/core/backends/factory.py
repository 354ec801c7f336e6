"""Pick and build the backend a configuration asks for: local transformers or a remote server.

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
        ModelLoadError: an unknown backend name or an unusable remote setting.
    """
    if settings.backend == TRANSFORMERS:
        try:
            from cosmos_reason_ros.core.backends.transformers_backend import TransformersBackend
        except ImportError as error:
            raise ModelLoadError(
                f'the transformers backend needs torch, torchvision and transformers ({error}): '
                "pip install 'cosmos_reason_ros[model]', or use backend openai") from None
        return TransformersBackend(settings.model)
    if settings.backend == OPENAI:
        from cosmos_reason_ros.core.backends.openai_backend import OpenAIBackend

        name = settings.remote.api_key_env
        api_key = (environ or {}).get(name) if name else None
        return OpenAIBackend(settings.remote, api_key=api_key)
    raise ModelLoadError(f"unknown backend '{settings.backend}': use one of "
                         + ', '.join(BACKENDS))


__all__ = ['BACKENDS', 'BackendSettings', 'OPENAI', 'TRANSFORMERS', 'create_backend']

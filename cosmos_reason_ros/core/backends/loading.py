"""A backend's load() on its own thread, so that whoever waits for it can stop waiting.

A checkpoint load can take minutes (download, weights to the GPU) and the step inside
transformers cannot be interrupted. The load runs on a daemon thread; stop() sets the stop event
the backend checks between stages and releases the waiter at once, so a shutdown never waits for
the load. A model that finishes loading after stop() is thrown away by the backend.
"""

import threading

from cosmos_reason_ros.core.backends.base import Backend
from cosmos_reason_ros.core.errors import LoadStopped, ModelLoadError


class BackgroundLoad:
    """backend.load() running on a daemon thread."""

    def __init__(self, backend: Backend, model_name: str):
        """Start loading.

        Args:
            backend: the backend to load.
            model_name: named in the error of a load that fails unexpectedly.
        """
        self._backend = backend
        self._model_name = model_name
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._finished = threading.Event()
        self._error: ModelLoadError | None = None
        self._thread = threading.Thread(target=self._run, name='model-load', daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._backend.load(stop=self._stop)
        except ModelLoadError as error:
            self._error = error
        except Exception as error:  # noqa: BLE001 - any load failure is reported, never raised
            self._error = ModelLoadError(f"model '{self._model_name}' failed to load: {error!r}")
        finally:
            self._finished.set()
            self._wake.set()

    @property
    def finished(self) -> bool:
        """Whether load() returned (or raised)."""
        return self._finished.is_set()

    def stop(self) -> None:
        """Ask the load to stop at its next stage and release wait() now."""
        self._stop.set()
        self._wake.set()

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the load finished or stop() was called.

        Raises:
            LoadStopped: stop() was called first (the thread may still be inside transformers).
            ModelLoadError: the load failed.
            TimeoutError: neither happened within timeout seconds.
        """
        if not self._wake.wait(timeout):
            raise TimeoutError(f"model '{self._model_name}' still loading after {timeout} s")
        if not self._finished.is_set() or (self._stop.is_set() and self._error is None):
            raise LoadStopped(f"loading '{self._model_name}' was stopped before it finished")
        if self._error is not None:
            raise self._error

    def join(self, timeout: float) -> bool:
        """Wait up to timeout seconds for the thread itself to end; True if it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


__all__ = ['BackgroundLoad']

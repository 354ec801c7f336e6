"""A model load that can be stopped, and that never holds the lock close() and generate() take."""

import threading

import pytest

from cosmos_reason_ros.core.backends import transformers_backend
from cosmos_reason_ros.core.backends.loading import BackgroundLoad
from cosmos_reason_ros.core.backends.transformers_backend import TransformersBackend
from cosmos_reason_ros.core.config import ModelConfig
from cosmos_reason_ros.core.errors import LoadStopped, ModelLoadError

TIMEOUT = 30.0


def _backend(checkpoint) -> TransformersBackend:
    return TransformersBackend(ModelConfig(model=str(checkpoint), device='cpu', dtype='fp32'))


class _SlowWeights:
    """Stands in for from_pretrained of a checkpoint whose weights take minutes to arrive."""

    def __init__(self, real):
        self.real = real
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, *args, **kwargs):
        self.entered.set()
        assert self.release.wait(TIMEOUT)
        return self.real(*args, **kwargs)


@pytest.fixture
def slow_weights(monkeypatch):
    auto = transformers_backend.AutoModelForImageTextToText
    slow = _SlowWeights(auto.from_pretrained)
    monkeypatch.setattr(auto, 'from_pretrained', slow)
    yield slow
    slow.release.set()


def test_close_does_not_wait_for_a_load_in_progress(tiny_qwen3_checkpoint, slow_weights):
    backend = _backend(tiny_qwen3_checkpoint)
    load = BackgroundLoad(backend, 'tiny')
    assert slow_weights.entered.wait(TIMEOUT)

    closed = threading.Event()
    threading.Thread(target=lambda: (backend.close(), closed.set()), daemon=True).start()
    assert closed.wait(TIMEOUT), 'close() waited for the load'
    load.stop()
    with pytest.raises(LoadStopped):
        load.wait(0)


def test_a_model_that_finishes_loading_after_stop_is_thrown_away(tiny_qwen3_checkpoint,
                                                                 slow_weights):
    backend = _backend(tiny_qwen3_checkpoint)
    stop = threading.Event()
    errors = []
    thread = threading.Thread(target=lambda: _load_into(backend, stop, errors), daemon=True)
    thread.start()
    assert slow_weights.entered.wait(TIMEOUT)
    stop.set()
    slow_weights.release.set()
    thread.join(TIMEOUT)

    assert len(errors) == 1 and isinstance(errors[0], LoadStopped)
    assert not backend.loaded


def _load_into(backend, stop, errors):
    try:
        backend.load(stop=stop)
    except ModelLoadError as error:
        errors.append(error)


def test_a_stop_set_before_the_load_loads_nothing(tiny_qwen3_checkpoint):
    backend = _backend(tiny_qwen3_checkpoint)
    stop = threading.Event()
    stop.set()
    with pytest.raises(LoadStopped, match='stopped'):
        backend.load(stop=stop)
    assert not backend.loaded


def test_a_closed_backend_loads_again(tiny_qwen3_checkpoint):
    backend = _backend(tiny_qwen3_checkpoint)
    load = BackgroundLoad(backend, 'tiny')
    load.wait(TIMEOUT)
    assert backend.loaded and load.finished
    backend.close()
    assert not backend.loaded and backend.family is None
    backend.load()
    assert backend.loaded


def test_a_failed_load_reports_its_error_to_the_waiter(tmp_path):
    load = BackgroundLoad(_backend(tmp_path / 'missing'), 'missing')
    with pytest.raises(ModelLoadError, match='does not exist'):
        load.wait(TIMEOUT)
    assert load.join(TIMEOUT)


def test_stop_releases_the_waiter_while_the_load_is_stuck(tiny_qwen3_checkpoint, slow_weights):
    load = BackgroundLoad(_backend(tiny_qwen3_checkpoint), 'tiny')
    assert slow_weights.entered.wait(TIMEOUT)
    with pytest.raises(TimeoutError):
        load.wait(0.01)
    load.stop()
    with pytest.raises(LoadStopped):
        load.wait(0)
    assert not load.finished, 'the thread is still inside from_pretrained; nobody waits for it'

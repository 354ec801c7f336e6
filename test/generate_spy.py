"""A spy on a loaded local backend's model.generate: the inputs the model received."""


class GenerateSpy:
    """Wraps model.generate to record the inputs the model received (`calls`, in order)."""

    def __init__(self, monkeypatch, backend):
        """Wrap backend._model.generate until the test ends (monkeypatch undoes it)."""
        self.calls = []
        original = backend._model.generate

        def generate(**kwargs):
            self.calls.append(kwargs)
            return original(**kwargs)

        monkeypatch.setattr(backend._model, 'generate', generate)

"""Typed errors of the core; each message says what went wrong and what to change."""


class ReasonError(Exception):
    """Base class: a goal could not be served. The message is meant for the planner's log."""


class InvalidRequestError(ReasonError):
    """The request itself is wrong: unknown mode, empty task, images of mixed sizes."""


class NoFramesError(ReasonError):
    """The window holds no frame for the requested time range."""


class StaleFramesError(ReasonError):
    """The newest frame is older than the configured maximum age."""


class ModelLoadError(ReasonError):
    """The model could not be loaded (missing path, bad config, no GPU for the setting)."""


class GenerationError(ReasonError):
    """The backend failed while generating."""


class GenerationCancelled(ReasonError):
    """Generation stopped because its cancel event was set."""

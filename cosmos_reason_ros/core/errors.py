"""Typed errors of the core and the one vocabulary of failures they carry.

Each error's message says what went wrong and what to change; its `kind` (a Failure) names the
failure the same way in the action's result codes, the offline and live evaluation reports and
the `ask` command.
"""

import enum
from typing import Optional

SUCCEEDED = 'succeeded'
"""The status word of a goal that was answered (the failures' words are Failure's values)."""


class Failure(str, enum.Enum):
    """Why a goal, or an evaluation item, did not get an answer.

    The goal failures are named as in Reason.action's result constants (lower case) and map to
    their codes through `result_code` (checked against the action in test_vocabulary.py). The
    rest only arise when evaluating a recording and have no result code.
    """

    MODEL_NOT_READY = 'model_not_ready'
    MODEL_LOAD_FAILED = 'model_load_failed'
    INVALID_GOAL = 'invalid_goal'
    NO_FRAMES = 'no_frames'
    STALE_FRAMES = 'stale_frames'
    BUSY = 'busy'
    CANCELED = 'canceled'
    PREEMPTED = 'preempted'
    GENERATION_FAILED = 'generation_failed'
    NOT_ACTIVE = 'not_active'
    SHUTTING_DOWN = 'shutting_down'
    # Evaluation only.
    BEFORE_START = 'before_start'
    """The item asks before the first frame of its recording."""
    AFTER_END = 'after_end'
    """The item asks after the last frame of its recording."""
    SOURCE = 'source'
    """The recording cannot be read (missing, unreadable, no such topic)."""
    NO_ANSWER = 'no_answer'
    """Live: the node rejected the goal, did not answer in time, or went away."""
    INTERRUPTED = 'interrupted'
    """The run was stopped (Ctrl-C) before the item finished."""

    @property
    def result_code(self) -> int | None:
        """Reason.Result's error_code for a goal failure; None for evaluation-only kinds."""
        return RESULT_CODES.get(self)

    @classmethod
    def from_result_code(cls, code: int) -> Optional['Failure']:
        """The failure a Reason.Result error_code stands for (None for SUCCESS).

        Raises:
            ValueError: a code the action does not define.
        """
        if code == SUCCESS_CODE:
            return None
        for kind, known in RESULT_CODES.items():
            if known == code:
                return kind
        raise ValueError(f'unknown Reason result code {code}: known are '
                         f"{', '.join(str(c) for c in sorted(RESULT_CODES.values()))}")


SUCCESS_CODE = 0
"""Reason.Result.SUCCESS."""
RESULT_CODES = {
    Failure.MODEL_NOT_READY: 1,
    Failure.MODEL_LOAD_FAILED: 2,
    Failure.INVALID_GOAL: 3,
    Failure.NO_FRAMES: 4,
    Failure.STALE_FRAMES: 5,
    Failure.BUSY: 6,
    Failure.CANCELED: 7,
    Failure.PREEMPTED: 8,
    Failure.GENERATION_FAILED: 9,
    Failure.NOT_ACTIVE: 10,
    Failure.SHUTTING_DOWN: 11,
}
"""The one mapping from failures to Reason.Result error codes."""


class ReasonError(Exception):
    """Base class: a goal could not be served. The message is meant for the planner's log.

    `kind` says which failure it is; a subclass sets its own, and one instance may name
    another (a cancel that was a preemption) with the `kind` argument.
    """

    kind: Failure = Failure.GENERATION_FAILED

    def __init__(self, *args, kind: Failure | None = None):
        super().__init__(*args)
        if kind is not None:
            self.kind = kind


class InvalidRequestError(ReasonError):
    """The request itself is wrong: unknown mode, empty task, images of mixed sizes."""

    kind = Failure.INVALID_GOAL


class NoFramesError(ReasonError):
    """The window holds no frame for the requested time range."""

    kind = Failure.NO_FRAMES


class StaleFramesError(ReasonError):
    """The newest frame is older than the configured maximum age."""

    kind = Failure.STALE_FRAMES


class ModelNotReadyError(ReasonError):
    """The model is still loading."""

    kind = Failure.MODEL_NOT_READY


class NotActiveError(ReasonError):
    """The server is not active (a lifecycle node unconfigured or inactive): it serves no goals."""

    kind = Failure.NOT_ACTIVE


class ShuttingDownError(ReasonError):
    """The server is shutting down."""

    kind = Failure.SHUTTING_DOWN


class ModelLoadError(ReasonError):
    """The model could not be loaded (missing path, bad config, no GPU for the setting)."""

    kind = Failure.MODEL_LOAD_FAILED


class ServerUnreachableError(ModelLoadError):
    """The model server could not be reached: it may still be starting, so trying again later
    can succeed (unlike a wrong setting).
    """


class GenerationError(ReasonError):
    """The backend failed while generating."""

    kind = Failure.GENERATION_FAILED


class EndpointsDownError(GenerationError):
    """Every endpoint of a remote backend failed before any answer text arrived (no connection,
    a 5xx or 429, no answer within the timeout): nothing was streamed, so another backend may
    answer the same request (remote.fallback_local). A failure after text arrived is a plain
    GenerationError: that answer was streamed already and is never answered twice.
    """


class GenerationCancelled(ReasonError):
    """Generation stopped because its cancel event was set (kind PREEMPTED for a preemption)."""

    kind = Failure.CANCELED


class TimeLimitError(GenerationError):
    """The goal ran longer than its time limit and was stopped."""


def failure_of(error: BaseException) -> Failure:
    """The failure an exception stands for: its kind, GENERATION_FAILED for anything untyped."""
    return error.kind if isinstance(error, ReasonError) else Failure.GENERATION_FAILED


def result_code_of(error: BaseException) -> int:
    """Reason.Result's error_code for an exception raised while serving a goal."""
    code = failure_of(error).result_code
    return RESULT_CODES[Failure.GENERATION_FAILED] if code is None else code


class LoadStopped(ModelLoadError):
    """The model load was stopped (shutdown) before it finished; nothing was kept."""

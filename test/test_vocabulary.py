"""One vocabulary: the core's enums and the msg/action constants name the same things alike."""

import pytest

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.core import reasoner
from cosmos_reason_ros.core.answers.modes import Mode
from cosmos_reason_ros.core.answers.parsing import ParseStatus
from cosmos_reason_ros.core.depth.geometry import LiftStatus
from cosmos_reason_ros.core.errors import (
    Failure,
    failure_of,
    GenerationCancelled,
    GenerationError,
    InvalidRequestError,
    ModelLoadError,
    ModelNotReadyError,
    NoFramesError,
    ReasonError,
    result_code_of,
    RESULT_CODES,
    StaleFramesError,
    SUCCESS_CODE,
)
from cosmos_reason_ros.core.evaluation.questions import QuestionSetError
from cosmos_reason_ros.core.evaluation.sources import SourceError
from cosmos_reason_ros.core.scheduling import BusyError
from cosmos_reason_ros.msg import ReasoningResult
from cosmos_reason_ros.ros.ask import status_name


def constants(message_type, prefix: str = '') -> dict:
    """The upper-case constants a generated message class defines, by name."""
    return {name[len(prefix):]: value for name, value in vars(message_type).items()
            if name.isupper() and name.startswith(prefix) and not name.startswith('_')
            and isinstance(value, (int, str))}


def test_modes_match_the_goal_constants():
    assert {mode.name: mode.value for mode in Mode} == constants(Reason.Goal, 'MODE_')


def test_parse_statuses_match_the_result_message():
    assert {status.name: int(status) for status in ParseStatus} == \
        constants(ReasoningResult, 'PARSE_')


def test_lift_statuses_match_the_result_message():
    assert {status.name: int(status) for status in LiftStatus} == \
        constants(ReasoningResult, 'LIFT_')


def test_stages_match_the_feedback_constants():
    core = {name[len('STAGE_'):]: value for name, value in vars(reasoner).items()
            if name.startswith('STAGE_')}
    assert core == constants(Reason.Feedback, 'STAGE_')


def test_failure_codes_match_the_result_constants():
    action = constants(Reason.Result)
    assert action.pop('SUCCESS') == SUCCESS_CODE
    assert {kind.name: code for kind, code in RESULT_CODES.items()} == action
    # Goal failures are named as the action names them.
    assert all(kind.value == kind.name.lower() for kind in RESULT_CODES)


def test_the_result_message_error_codes_are_the_action_result_codes():
    # ReasoningResult.error_code carries the action's codes, so a monitor's result (no action
    # around it) says how its tick ended in the same words.
    message = {name: value for name, value in constants(ReasoningResult).items()
               if not name.startswith(('PARSE_', 'LIFT_'))}
    assert message == constants(Reason.Result)
    assert message.pop('SUCCESS') == SUCCESS_CODE
    assert {kind.name: code for kind, code in RESULT_CODES.items()} == message


def test_every_result_code_names_one_failure_and_back():
    for kind, code in RESULT_CODES.items():
        assert Failure.from_result_code(code) is kind
        assert kind.result_code == code
    assert Failure.from_result_code(SUCCESS_CODE) is None
    with pytest.raises(ValueError, match='unknown Reason result code 77'):
        Failure.from_result_code(77)


def test_evaluation_only_failures_have_no_result_code():
    for kind in (Failure.BEFORE_START, Failure.AFTER_END, Failure.SOURCE, Failure.NO_ANSWER,
                 Failure.INTERRUPTED):
        assert kind.result_code is None


@pytest.mark.parametrize('error, kind', [
    (ModelNotReadyError('loading'), Failure.MODEL_NOT_READY),
    (ModelLoadError('no such path'), Failure.MODEL_LOAD_FAILED),
    (InvalidRequestError('empty task'), Failure.INVALID_GOAL),
    (QuestionSetError('bad file'), Failure.INVALID_GOAL),
    (NoFramesError('no frames'), Failure.NO_FRAMES),
    (StaleFramesError('old'), Failure.STALE_FRAMES),
    (BusyError('busy'), Failure.BUSY),
    (GenerationCancelled('stop'), Failure.CANCELED),
    (GenerationCancelled('newer goal', kind=Failure.PREEMPTED), Failure.PREEMPTED),
    (GenerationError('server gone'), Failure.GENERATION_FAILED),
    (ReasonError('untyped'), Failure.GENERATION_FAILED),
    (RuntimeError('a bug'), Failure.GENERATION_FAILED),
])
def test_every_error_carries_its_failure(error, kind):
    assert failure_of(error) is kind
    assert result_code_of(error) == getattr(Reason.Result, kind.name)


def test_a_source_error_is_a_source_failure_and_a_goal_would_see_it_as_generation_failed():
    error = SourceError("'x.mcap' does not exist")
    assert failure_of(error) is Failure.SOURCE
    assert result_code_of(error) == Reason.Result.GENERATION_FAILED


def test_ask_prints_the_failure_names_the_reports_use():
    assert status_name(Reason.Result.SUCCESS) == 'succeeded'
    assert status_name(Reason.Result.STALE_FRAMES) == Failure.STALE_FRAMES.value == \
        'stale_frames'
    assert status_name(Reason.Result.CANCELED) == 'canceled'

"""Question sets: labelled moments of a bag or clip, each with a question and its expected answer.

The types every reader produces and the run, the scoring and the report read; question_file
reads this package's YAML format, reason1_benchmark NVIDIA's Cosmos-Reason1 benchmark layout.
"""

from collections.abc import Iterable, Mapping
import dataclasses
import math
import pathlib
from typing import Any

from cosmos_reason_ros.core.answers.modes import Mode
from cosmos_reason_ros.core.answers.parsing import Box, Event
from cosmos_reason_ros.core.errors import InvalidRequestError
from cosmos_reason_ros.core.evaluation.monitor_labels import MonitorItem

DEFAULT_TOLERANCE = 0.1
"""A trajectory is correct when its mean point error is at most this fraction of the diagonal."""
DEFAULT_IOU_THRESHOLD = 0.5
"""Boxes (and events, in time) are correct when their mean best IoU reaches this."""
DEFAULT_TOLERANCE_3D = 0.05
"""A trajectory in 3D is correct when its mean point error is at most this many metres."""
EXPECTED_KINDS = ('choice', 'verdict', 'trajectory', 'boxes', 'events', 'keywords')
"""The expected answers in the image (fields of Expected); an item sets at most one."""
EXPECTED_3D_MODES = {'trajectory_3d': Mode.TRAJECTORY, 'centres_3d': Mode.GROUNDING}
"""Expected answers in metres and the mode each belongs to: a trajectory's path, a grounding's
box centres; each may stand beside the answer in pixels of its mode."""
EXPECTED_3D = tuple(EXPECTED_3D_MODES)
"""The names of the expected answers in metres (fields of Expected and of its dict form)."""
_MAX_PROBLEMS_SHOWN = 20


class QuestionSetError(InvalidRequestError):
    """A question set that cannot be used; the message lists every problem, item by item."""

    @classmethod
    def listing(cls, path: pathlib.Path, problems: Iterable[str]) -> 'QuestionSetError':
        """The error for a file with these problems: all counted, the first 20 listed."""
        problems = list(problems)
        shown = problems[:_MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        lines = [f"question set '{path}' has {len(problems)} problem(s):"]
        lines += [f'  - {problem}' for problem in shown]
        if more:
            lines.append(f'  ... and {more} more')
        return cls('\n'.join(lines))


@dataclasses.dataclass(frozen=True)
class AskTime:
    """When an item asks, on the bag clock (the log time `ros2 bag play --clock` publishes).

    Exactly one of: `offset` seconds after the start of the bag or clip, an absolute `stamp` in
    seconds, or `at_end` (the last frame, as the benchmark asks about whole clips).
    """

    offset: float | None = None
    stamp: float | None = None
    at_end: bool = False

    def resolve(self, start: float, end: float) -> float:
        """The bag time in seconds, given the source's start and end (bag time, seconds)."""
        if self.at_end:
            return end
        if self.stamp is not None:
            return self.stamp
        return start + (self.offset or 0.0)

    def describe(self) -> str:
        """'2.500 s', 'stamp 1700000002.500' or 'end', for messages."""
        if self.at_end:
            return 'end'
        if self.stamp is not None:
            return f'stamp {self.stamp:.3f}'
        return f'{self.offset:.3f} s'


@dataclasses.dataclass(frozen=True)
class CameraTopics:
    """One named camera of a question set: its topics in the bag."""

    name: str
    image: str
    """Image topic (sensor_msgs/Image or CompressedImage)."""
    depth: str = ''
    """Depth image aligned to `image` ('': answers in this camera are not lifted)."""
    camera_info: str = ''
    """CameraInfo of this camera."""

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form for the report."""
        return {'image': self.image, **({'depth': self.depth, 'camera_info': self.camera_info}
                                        if self.depth else {})}


@dataclasses.dataclass(frozen=True)
class Expected:
    """The right answer to an item; at most one field is set (none: the item is not scored).

    Coordinates are pixels of the source camera image; event times are seconds after the start
    of the bag or clip, like AskTime.offset.
    """

    choice: str = ''
    """Multiple choice: the option letter."""
    verdict: str = ''
    """Question: 'yes' or 'no'."""
    trajectory: tuple[tuple[float, float], ...] = ()
    boxes: tuple[Box, ...] = ()
    events: tuple[Event, ...] = ()
    keywords: tuple[tuple[str, ...], ...] = ()
    """Free text: every entry must occur in the answer; an entry lists alternative spellings."""
    trajectory_3d: tuple[tuple[float, float, float], ...] = ()
    """The trajectory in metres in the colour camera's optical frame, as the answer lifted with
    the recording's depth and CameraInfo should give it; it may stand beside `trajectory`."""
    centres_3d: tuple[tuple[float, float, float], ...] = ()
    """Grounding: the centres of the boxed objects' visible surfaces in metres, in the same
    frame; it may stand beside `boxes`."""
    camera: str = ''
    """The camera whose view the expected points and boxes are in (and whose optical frame the
    3D ones are in): '' for the item's one view, or its first camera."""

    @property
    def kind(self) -> str:
        """Which answer in the image is set: one of choice, verdict, trajectory, boxes, events,
        keywords; '' when none is (an item may be scored in 3D only).
        """
        return next((kind for kind in EXPECTED_KINDS if getattr(self, kind)), '')

    @property
    def scored(self) -> bool:
        """Whether there is anything to score the answer against, in the image or in 3D."""
        return bool(self.kind or self.in_3d)

    @property
    def in_3d(self) -> str:
        """Which answer in metres is expected: 'trajectory_3d', 'centres_3d' or ''."""
        return next((name for name in EXPECTED_3D_MODES if getattr(self, name)), '')


@dataclasses.dataclass(frozen=True)
class QuestionItem:
    """One labelled question: when it is asked, what is asked, and the expected answer."""

    id: str
    source: str
    """Bag (folder, .mcap or .db3) or clip the item is about, as an absolute path."""
    topic: str
    """Image topic in the bag ('' picks the only one; ignored for clips)."""
    time: AskTime
    mode: Mode
    depth_topic: str = ''
    """Depth image topic aligned to `topic` (sensor_msgs/Image, 16UC1 or 32FC1); with
    camera_info_topic, answers are lifted into 3D ('': not lifted)."""
    camera_info_topic: str = ''
    """CameraInfo topic of the colour camera."""
    task: str = ''
    choices: tuple[str, ...] = ()
    object_name: str = ''
    reasoning: bool = False
    window_duration: float = 0.0
    """Seconds of history; 0 takes the run's default, math.inf the whole source."""
    max_frames: int = 0
    max_new_tokens: int = 0
    tolerance: float = DEFAULT_TOLERANCE
    iou_threshold: float = DEFAULT_IOU_THRESHOLD
    tolerance_3d: float = DEFAULT_TOLERANCE_3D
    """Metres of mean error within which a trajectory in 3D is right."""
    expected: Expected = Expected()
    group: str = ''
    """Benchmark items: the dataset the item belongs to ('av', 'robovqa'); reports count
    accuracy per group as well as pooled."""
    choice_labels: tuple[str, ...] = ()
    """Benchmark items: the option keys of the file ('A', 'B', ...) in choice order; the
    benchmark procedure writes them into its prompt and compares the answer with them."""
    camera_topics: tuple[CameraTopics, ...] = ()
    """The set's named cameras, in its order ((): one unnamed camera on `topic`); `topic` is
    then the first one's image topic."""
    cameras: tuple[str, ...] = ()
    """The cameras the item asks about, in prompt order (all of camera_topics by default)."""

    def camera(self, name: str) -> CameraTopics | None:
        """The topics of one of the set's cameras (None: not one of them)."""
        return next((camera for camera in self.camera_topics if camera.name == name), None)

    @property
    def truth_camera(self) -> str:
        """The camera the expected answer's coordinates are in ('' with one unnamed camera)."""
        return self.expected.camera or (self.cameras[0] if self.cameras else '')


@dataclasses.dataclass(frozen=True)
class QuestionSet:
    """Items to ask, in file order, with where they came from."""

    name: str
    path: str
    items: tuple[QuestionItem, ...]
    format: str = 'yaml'
    """'yaml' (this package's format) or 'cosmos_reason1_benchmark'."""
    monitors: tuple[MonitorItem, ...] = ()
    """Standing queries with labelled answer changes, replayed on the node's tick schedule
    (evaluation/monitor_replay.py)."""

    def sources(self) -> list[tuple[str, str]]:
        """The distinct (source, topic) pairs, in order of first appearance."""
        return list(dict.fromkeys((item.source, item.topic) for item in self.items))

    @property
    def lifted(self) -> bool:
        """Whether any item is lifted into 3D (names depth and CameraInfo topics)."""
        return any(item.depth_topic or any(camera.depth for camera in item.camera_topics)
                   for item in self.items)


def expected_to_dict(expected: Expected) -> dict[str, Any]:
    """The expected answer as JSON-ready data: {'kind': ..., kind: value}, with
    'trajectory_3d' or 'centres_3d' beside it when set ({} when unscored).
    """
    kind = expected.kind
    lifted = {name: [list(point) for point in getattr(expected, name)]
              for name in EXPECTED_3D_MODES if getattr(expected, name)}
    camera = {'camera': expected.camera} if expected.camera else {}
    if not kind:
        return {'kind': expected.in_3d, **lifted, **camera} if lifted else {}
    value: Any = getattr(expected, kind)
    if kind == 'trajectory':
        value = [list(point) for point in value]
    elif kind == 'boxes':
        value = [{'label': box.label, 'bbox': [box.x_min, box.y_min, box.x_max, box.y_max]}
                 for box in value]
    elif kind == 'events':
        value = [{'start': e.start, 'end': e.end, 'caption': e.caption} for e in value]
    elif kind == 'keywords':
        value = [list(options) for options in value]
    return {'kind': kind, kind: value, **lifted, **camera}


def item_settings(item: QuestionItem) -> Mapping[str, Any]:
    """The item's question fields as JSON-ready data (for the report)."""
    return {
        'mode': item.mode.value, 'task': item.task, 'choices': list(item.choices),
        'object_name': item.object_name, 'reasoning': item.reasoning,
        'window_duration': 'all' if math.isinf(item.window_duration) else item.window_duration,
        'max_frames': item.max_frames, 'max_new_tokens': item.max_new_tokens,
        'tolerance': item.tolerance, 'iou_threshold': item.iou_threshold,
        **({'tolerance_3d': item.tolerance_3d, 'depth_topic': item.depth_topic,
            'camera_info_topic': item.camera_info_topic} if item.depth_topic else {}),
        **({'group': item.group} if item.group else {}),
        **({'choice_labels': list(item.choice_labels)} if item.choice_labels else {}),
        **({'cameras': list(item.cameras)} if item.camera_topics else {}),
    }


__all__ = [
    'AskTime', 'CameraTopics', 'DEFAULT_IOU_THRESHOLD', 'DEFAULT_TOLERANCE',
    'DEFAULT_TOLERANCE_3D', 'EXPECTED_3D',
    'EXPECTED_3D_MODES', 'EXPECTED_KINDS', 'Expected', 'QuestionItem', 'QuestionSet',
    'QuestionSetError', 'expected_to_dict', 'item_settings',
]

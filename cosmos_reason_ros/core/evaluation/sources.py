"""Camera frames from recordings, in the order the node would have received them.

Bags (rosbag2 MCAP or sqlite3, read with rosbags: no ROS needed) and clips (PyAV) yield the same
SourceFrame: bag time, header stamp, frame_id, and a loader called only for frames that are kept.
"""

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
import dataclasses
import functools
import hashlib
import pathlib
import struct
from typing import Any, NamedTuple, Protocol

import numpy as np

from cosmos_reason_ros.core.camera.frames import FrameWindow, Offer
from cosmos_reason_ros.core.camera.images import downscale, stamp_seconds, to_rgb
from cosmos_reason_ros.core.camera.media import iter_media, VIDEO_SUFFIXES
from cosmos_reason_ros.core.config import WindowConfig
from cosmos_reason_ros.core.errors import Failure, InvalidRequestError

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
BAG_SUFFIXES = ('.mcap', '.db3')


class Time(NamedTuple):
    """builtin_interfaces/Time in plain Python."""

    sec: int
    nanosec: int


class SourceError(InvalidRequestError):
    """A bag or clip that cannot be read, or a topic that is not there; the message says why."""

    kind = Failure.SOURCE


@dataclasses.dataclass(frozen=True)
class SourceFrame:
    """One camera message of a recording."""

    bag_time: float
    """Seconds on the bag clock: the log time (what `ros2 bag play --clock` publishes on
    /clock); for clips, the presentation time."""
    stamp: float
    """Header stamp in seconds: what the node's frame window sorts by."""
    stamp_ns: int
    """The same header stamp in integer nanoseconds (exact, for goals sent to a live node)."""
    frame_id: str
    load: Callable[[], np.ndarray]
    """Decodes the message to full-size RGB; call it only for frames the window keeps."""
    camera: str = ''
    """The camera it belongs to ('' for the one unnamed camera)."""


class FrameSource(Protocol):
    """A recording the evaluator can replay."""

    path: str
    topic: str
    kind: str
    """'bag' or 'clip'."""
    start: float
    """Bag time (seconds) that item offsets count from."""

    def frames(self) -> Iterator[SourceFrame]:
        """The camera messages in log-time order (as recorded, not sorted by header stamp)."""

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts for the report: path, kind, topic, storage, message count."""


class BagSource:
    """The image topic of a rosbag2 bag (folder, or a lone .mcap / .db3 file)."""

    kind = 'bag'

    def __init__(self, path: str | pathlib.Path, topic: str = ''):
        """Open the bag and pick the image topic.

        Args:
            path: bag folder (with metadata.yaml) or storage file.
            topic: image topic; '' picks the only sensor_msgs/Image or CompressedImage topic.

        Raises:
            SourceError: the bag cannot be opened, has no image topic, has several and none was
                chosen, or `topic` is not one of them; the message lists the image topics.
        """
        from rosbags.highlevel import AnyReader, AnyReaderError
        from rosbags.typesys import get_typestore, Stores

        self.path = str(path)
        self._reader_type = AnyReader
        self._typestore = get_typestore(Stores.LATEST)
        try:
            with AnyReader([pathlib.Path(path)], default_typestore=self._typestore) as reader:
                topics = {name: info.msgtype or '' for name, info in reader.topics.items()}
                counts = {name: info.msgcount for name, info in reader.topics.items()}
                self.start = reader.start_time * 1e-9
                self.end = reader.end_time * 1e-9
                self._storage = _storage_of(reader)
        except (AnyReaderError, OSError, ValueError, KeyError) as error:
            raise SourceError(f"cannot read bag '{path}': {error}") from None
        self.topic = _choose_topic(self.path, topics, topic)
        self.message_type = topics[self.topic]
        self.message_count = counts[self.topic]

    def frames(self) -> Iterator[SourceFrame]:
        """The messages on the topic in log-time order; decoding waits until load() is called.

        Raises:
            SourceError: the bag became unreadable while reading.
        """
        return _bag_frames(self._reader_type, self.path, self._typestore, {self.topic: ''})

    def header_stamps(self) -> Iterator[tuple[int, int]]:
        """(log time, header stamp) of every message on the topic, in nanoseconds, read from
        the serialized header without deserializing the image.
        """
        with self._reader_type([pathlib.Path(self.path)],
                               default_typestore=self._typestore) as reader:
            connections = [c for c in reader.connections if c.topic == self.topic]
            for _, timestamp, raw in reader.messages(connections=connections):
                yield timestamp, cdr_header_stamp(raw)

    def describe(self) -> dict[str, Any]:
        """Path, kind, storage format, topic, message type and count, and a fingerprint."""
        return {'path': str(pathlib.Path(self.path).resolve()), 'kind': self.kind,
                'storage': self._storage, 'topic': self.topic,
                'message_type': self.message_type, 'messages': self.message_count,
                'fingerprint': {'bytes': _size_of(self.path),
                                'first_log_ns': round(self.start * 1e9),
                                'last_log_ns': round(self.end * 1e9)}}


class CameraBagSource:
    """The image topics of several named cameras of one bag, read together in log order."""

    kind = 'bag'

    def __init__(self, path: str | pathlib.Path, cameras: Sequence[tuple[str, str]]):
        """Open the bag and check every camera's image topic.

        Args:
            path: bag folder (with metadata.yaml) or storage file.
            cameras: (camera name, image topic) pairs, in the set's order.

        Raises:
            SourceError: the bag cannot be opened, or a camera's topic is not an image topic
                of it; the message names the camera and lists the image topics.
        """
        self.path = str(path)
        self.cameras = {}
        for name, topic in cameras:
            try:
                self.cameras[name] = BagSource(path, topic)
            except SourceError as error:
                raise SourceError(f"camera '{name}': {error}") from None
        first = next(iter(self.cameras.values()))
        self.topic = first.topic
        self.start, self.end = first.start, first.end
        self._camera_of = {source.topic: name for name, source in self.cameras.items()}

    def frames(self) -> Iterator[SourceFrame]:
        """Every camera's messages in log-time order, each with its camera's name.

        Raises:
            SourceError: the bag became unreadable while reading.
        """
        first = next(iter(self.cameras.values()))
        return _bag_frames(first._reader_type, self.path, first._typestore, self._camera_of)

    def describe(self) -> dict[str, Any]:
        """The first camera's description, with every camera's topic, type and count."""
        first = next(iter(self.cameras.values())).describe()
        return {**first, 'cameras': {
            name: {'topic': source.topic, 'message_type': source.message_type,
                   'messages': source.message_count} for name, source in self.cameras.items()}}


def _bag_frames(reader_type: Any, path: str, typestore: Any,
               camera_of: dict[str, str]) -> Iterator[SourceFrame]:
    """The messages of the topics in `camera_of` (topic -> camera name) in log-time order, each
    with its camera's name; decoding waits until load() is called.

    Raises:
        SourceError: the bag became unreadable while reading.
    """
    from rosbags.highlevel import AnyReaderError

    try:
        with reader_type([pathlib.Path(path)], default_typestore=typestore) as reader:
            connections = [c for c in reader.connections if c.topic in camera_of]
            for connection, timestamp, raw in reader.messages(connections=connections):
                msg: Any = reader.deserialize(raw, connection.msgtype)
                stamp = msg.header.stamp
                yield SourceFrame(bag_time=timestamp * 1e-9, stamp=stamp_seconds(stamp),
                                  stamp_ns=int(stamp.sec) * 10**9 + int(stamp.nanosec),
                                  frame_id=str(msg.header.frame_id),
                                  load=functools.partial(to_rgb, msg),
                                  camera=camera_of[connection.topic])
    except AnyReaderError as error:
        raise SourceError(f"cannot read bag '{path}': {error}") from None


class ClipSource:
    """A video clip (or an image, or a folder of images) as a camera stream from time 0."""

    kind = 'clip'

    def __init__(self, path: str | pathlib.Path, *, folder_fps: float = 4.0):
        """Check that the path exists and is a kind of media iter_media reads.

        Raises:
            SourceError: the path is missing or not a clip, an image or an image folder.
        """
        self.path = str(path)
        self.topic = ''
        self.start = 0.0
        self._folder_fps = folder_fps
        try:
            # Opens the file (or lists the folder) up front, so a bad path fails here.
            next(iter(iter_media(self.path, folder_fps=folder_fps)), None)
        except InvalidRequestError as error:
            raise SourceError(str(error)) from None

    def frames(self) -> Iterator[SourceFrame]:
        """Frames at their presentation times (seconds from the first frame)."""
        try:
            for stamp, load in iter_media(self.path, folder_fps=self._folder_fps):
                yield SourceFrame(bag_time=stamp, stamp=stamp, stamp_ns=round(stamp * 1e9),
                                  frame_id='', load=load)
        except InvalidRequestError as error:
            raise SourceError(str(error)) from None

    def describe(self) -> dict[str, Any]:
        """Path, kind and container format ('mp4', ..., or 'folder'), and a fingerprint."""
        path = pathlib.Path(self.path)
        suffix = path.suffix.lstrip('.').lower()
        return {'path': str(path.resolve()), 'kind': self.kind, 'storage': suffix or 'folder',
                'topic': '', 'message_type': '', 'messages': None,
                'fingerprint': {'bytes': _size_of(path), 'sha256_ends': _ends_digest(path)}}


@dataclasses.dataclass(frozen=True)
class Timeline:
    """Bag time and header stamp of every message of a source, in log order (nothing decoded).

    The live client plans its goals with it: which frame is the newest at an item's bag time,
    and which bag time a returned frame stamp had.
    """

    start: float
    bag_times: tuple[float, ...]
    stamps_ns: tuple[int, ...]

    @classmethod
    def read(cls, source: FrameSource) -> 'Timeline':
        """Read the timeline of a source (one pass, no image decoding)."""
        bag_times, stamps = [], []
        for frame in source.frames():
            bag_times.append(frame.bag_time)
            stamps.append(frame.stamp_ns)
        return cls(start=source.start, bag_times=tuple(bag_times), stamps_ns=tuple(stamps))

    def newest_at(self, bag_time: float, epsilon: float = 1e-6) -> int | None:
        """Index of the newest message logged at or before bag_time (None: before the first)."""
        index = bisect.bisect_right(self.bag_times, bag_time + epsilon) - 1
        return index if index >= 0 else None

    def kept_stamps(self, window: WindowConfig) -> tuple[int | None, ...]:
        """For each message, the stamp (ns) of the newest frame a node's window holds then.

        The messages go through a FrameWindow with this configuration (no image is decoded),
        so decimation and stamp jumps follow the node's own rules; None until one is kept.
        """
        frames = FrameWindow(window)
        placeholder = np.zeros((1, 1, 3), np.uint8)
        kept: list[int | None] = []
        newest: int | None = None
        for stamp_ns in self.stamps_ns:
            offer = frames.offer(ns_to_seconds(stamp_ns), lambda: placeholder)
            if offer in (Offer.KEPT, Offer.REWOUND):
                newest = stamp_ns
            kept.append(newest)
        return tuple(kept)

    def kept_history(self, kept: Sequence[int | None], upto: int) -> list[float]:
        """Stamps (seconds) a window kept since it was last cleared, up to message `upto`.

        Args:
            kept: kept_stamps() of this timeline.
            upto: index of the last message to count.
        """
        history: list[float] = []
        for stamp_ns in kept[:upto + 1]:
            if stamp_ns is None:
                continue
            stamp = ns_to_seconds(stamp_ns)
            if history and stamp < history[-1]:
                history = [stamp]  # a stamp jump back cleared the window
            elif not history or stamp > history[-1]:
                history.append(stamp)
        return history

    def bag_time_of(self, stamp: float, tolerance: float = 1e-5) -> float | None:
        """Bag time of the latest message whose header stamp is within tolerance of stamp."""
        for index in range(len(self.stamps_ns) - 1, -1, -1):
            if abs(ns_to_seconds(self.stamps_ns[index]) - stamp) <= tolerance:
                return self.bag_times[index]
        return None


def cdr_header_stamp(raw: bytes) -> int:
    """The header stamp (ns) of a serialized message that starts with std_msgs/Header: after
    the 4-byte CDR encapsulation come int32 sec and uint32 nanosec.
    """
    order = '<' if raw[1] & 1 else '>'
    sec, nanosec = struct.unpack_from(order + 'iI', raw, 4)
    return sec * 10**9 + nanosec


def stamps_advance(stamps: Iterable[int]) -> bool:
    """Whether header stamps move forward: at least half of the steps between consecutive
    messages go forward (a bag loop or a reordered frame does not count against a source;
    all-zero or constant stamps do).
    """
    forward = steps = 0
    previous: int | None = None
    for stamp in stamps:
        if previous is not None:
            steps += 1
            forward += stamp > previous
        previous = stamp
    return steps == 0 or forward * 2 >= steps


def check_stamps(source: 'FrameSource') -> str:
    """'' when the source's header stamps advance, else a note saying that log time is used.

    Only bags can have this problem: a clip's times are its presentation times. Of several
    cameras, one whose stamps do not advance puts them all on log time (one clock for all).
    """
    if isinstance(source, CameraBagSource):
        return next((f'camera {name!r}: {note}' for name, camera in source.cameras.items()
                     if (note := check_stamps(camera))), '')
    if not isinstance(source, BagSource):
        return ''
    pairs = list(source.header_stamps())
    if stamps_advance(stamp for _, stamp in pairs):
        return ''
    distinct = len({stamp for _, stamp in pairs})
    return (f"the header stamps on '{source.topic}' do not advance ({len(pairs)} messages, "
            f'{distinct} distinct stamp(s), first {pairs[0][1] * 1e-9:.3f} s): frames are '
            'ordered and timed by their log time instead. Fix the recording by stamping '
            'images in the camera driver (header.stamp = capture time)')


def _size_of(path: str | pathlib.Path) -> int:
    path = pathlib.Path(path)
    if path.is_dir():
        return sum(child.stat().st_size for child in sorted(path.rglob('*')) if child.is_file())
    return path.stat().st_size


def _ends_digest(path: pathlib.Path, size: int = 1 << 16) -> str:
    """SHA-256 of the first and last `size` bytes of a file (of the sorted file names of a
    folder): cheap, and enough to tell two recordings apart.
    """
    digest = hashlib.sha256()
    if path.is_dir():
        digest.update('\n'.join(sorted(child.name for child in path.iterdir())).encode())
        return digest.hexdigest()[:16]
    with path.open('rb') as stream:
        digest.update(stream.read(size))
        stream.seek(max(path.stat().st_size - size, 0))
        digest.update(stream.read(size))
    return digest.hexdigest()[:16]


def ns_to_seconds(stamp_ns: int) -> float:
    """Nanoseconds to seconds with the node's arithmetic (sec + nanosec * 1e-9), so a stamp
    computed here equals, to the last bit, the one the node computes from the same header.
    """
    return stamp_seconds(Time(stamp_ns // 10**9, stamp_ns % 10**9))


def load_frames(source: FrameSource, stamps: Iterable[float], *, max_pixels: int,
                tolerance: float = 1e-5) -> dict[float, np.ndarray]:
    """Decode the frames with the given header stamps, downscaled as the window stores them.

    Returns:
        {requested stamp: RGB image} for the stamps found (within tolerance); frames that do
        not decode are left out.
    """
    wanted = sorted(set(stamps))
    found: dict[float, np.ndarray] = {}
    if not wanted:
        return found
    for frame in source.frames():
        index = bisect.bisect_left(wanted, frame.stamp - tolerance)
        if index < len(wanted) and abs(wanted[index] - frame.stamp) <= tolerance:
            try:
                found[wanted[index]] = downscale(frame.load(), max_pixels)
            except (ValueError, TypeError):
                continue
    return found


def open_source(path: str | pathlib.Path, topic: str = '', *,
                cameras: Sequence[tuple[str, str]] = ()) -> FrameSource:
    """A BagSource for rosbag2 bags, a ClipSource for clips, images and image folders; with
    named cameras ((name, image topic) pairs), a CameraBagSource reading all of them.

    Raises:
        SourceError: a missing path, an unknown kind of file, a bag topic problem, or named
            cameras on a clip.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise SourceError(f"'{path}' does not exist: give a rosbag2 bag (folder, .mcap or .db3) "
                          f"or a clip ({', '.join(VIDEO_SUFFIXES)})")
    if is_bag(path):
        return CameraBagSource(path, cameras) if cameras else BagSource(path, topic)
    if cameras:
        raise SourceError(f"'{path}' is a clip, one camera: named cameras ("
                          f"{', '.join(name for name, _ in cameras)}) are topics of a bag")
    return ClipSource(path)


def is_bag(path: str | pathlib.Path) -> bool:
    """True for a rosbag2 folder (metadata.yaml or storage files inside) or storage file."""
    path = pathlib.Path(path)
    if path.is_dir():
        return (path / 'metadata.yaml').exists() or any(
            child.suffix in BAG_SUFFIXES for child in path.iterdir())
    return path.suffix.lower() in BAG_SUFFIXES


def _choose_topic(path: str, topics: dict[str, str], wanted: str) -> str:
    images = {name: kind for name, kind in topics.items() if kind in IMAGE_TYPES}
    listing = ', '.join(f'{name} ({kind.rsplit("/", 1)[-1]})'
                        for name, kind in sorted(images.items()))
    if not images:
        others = ', '.join(f'{name} ({kind})' for name, kind in sorted(topics.items()))
        raise SourceError(
            f"bag '{path}' has no sensor_msgs/Image or CompressedImage topic; its topics: "
            f'{others or "none"}')
    if not wanted:
        if len(images) == 1:
            return next(iter(images))
        raise SourceError(f"bag '{path}' has several image topics; choose one with --topic (or "
                          f"'topic' in the question set): {listing}")
    name = wanted if wanted.startswith('/') else '/' + wanted
    if name in images:
        return name
    if name in topics:
        raise SourceError(f"topic '{name}' in bag '{path}' is a {topics[name]}, not an image; "
                          f'image topics: {listing}')
    raise SourceError(f"bag '{path}' has no topic '{name}'; image topics: {listing}")


def _storage_of(reader: Any) -> str:
    """'mcap' or 'sqlite3', from the files the reader opened."""
    suffixes: set[str] = set()
    for bag_path in getattr(reader, 'paths', []):
        bag_path = pathlib.Path(bag_path)
        files = bag_path.iterdir() if bag_path.is_dir() else [bag_path]
        suffixes.update(file.suffix for file in files)
    if '.mcap' in suffixes:
        return 'mcap'
    if '.db3' in suffixes:
        return 'sqlite3'
    return 'unknown'


__all__ = [
    'BagSource', 'CameraBagSource', 'ClipSource', 'FrameSource', 'IMAGE_TYPES', 'SourceError',
    'SourceFrame',
    'Timeline', 'cdr_header_stamp', 'check_stamps', 'is_bag', 'load_frames', 'ns_to_seconds',
    'open_source', 'stamps_advance',
]

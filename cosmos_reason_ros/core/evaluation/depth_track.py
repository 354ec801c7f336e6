"""The depth images and CameraInfo of a bag, for lifting evaluated answers into 3D.

An answer is lifted as the node lifts it: with the depth frame whose header stamp is nearest to
the stamp of the answer's frame (within a tolerance), among those the node had received by the
time the answer was done, and with the last CameraInfo received by then. Only header stamps are
read up front; a depth image is read from the bag when an answer needs it.
"""

import bisect
import dataclasses
import pathlib
from typing import Any

from cosmos_reason_ros.core.answers.parsing import ParsedAnswer
from cosmos_reason_ros.core.depth.compressed import decode_compressed_depth
from cosmos_reason_ros.core.depth.geometry import (
    camera_info_data,
    CameraInfoData,
    DepthData,
    lift_answer,
    Lifted,
    LiftError,
    LiftSettings,
    LiftStatus,
)
from cosmos_reason_ros.core.evaluation.sources import cdr_header_stamp, FrameSource, SourceError

DEPTH_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_DEPTH_TYPE = 'sensor_msgs/msg/CompressedImage'
"""image_transport's compressedDepth (PNG) topics, e.g. .../image_raw/compressedDepth."""
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
DEPTH_WAIT = 0.2
"""Seconds after the asking time that a depth frame or CameraInfo may still be logged and be
used: the node lifts an answer once it is generated, waiting this long for a depth frame still
on its way (ros/depth_input.DEPTH_WAIT)."""


@dataclasses.dataclass(frozen=True)
class DepthSettings:
    """How an offline run matches depth to an answer's frame and lifts the answer."""

    tolerance: float = 0.02
    """Largest |depth stamp - colour stamp| (s) of a match: the node's depth.tolerance."""
    lift: LiftSettings = LiftSettings()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings for the report."""
        return {'tolerance': self.tolerance, 'lift': dataclasses.asdict(self.lift)}


class DepthTrack:
    """The depth and CameraInfo topics of one bag, indexed by log time and header stamp."""

    def __init__(self, path: str | pathlib.Path, depth_topic: str, camera_info_topic: str, *,
                 use_log_time: bool = False):
        """Index the two topics (header stamps only; CameraInfo messages are small and read).

        Args:
            path: the bag (folder or storage file).
            depth_topic: the aligned depth image topic.
            camera_info_topic: the colour camera's CameraInfo topic.
            use_log_time: match by log time instead of header stamps (the colour frames'
                header stamps do not advance, so the run orders them by log time too).

        Raises:
            SourceError: the bag cannot be read, or a topic is missing or of another type; the
                message lists the bag's topics of the right type.
        """
        from rosbags.highlevel import AnyReader, AnyReaderError
        from rosbags.typesys import get_typestore, Stores

        self.path = str(path)
        self.depth_topic = depth_topic
        self.camera_info_topic = camera_info_topic
        self._reader_type = AnyReader
        self._typestore = get_typestore(Stores.LATEST)
        self._log_ns: list[int] = []
        self._stamps_ns: list[int] = []
        self._info_log_ns: list[int] = []
        self._infos: list[CameraInfoData] = []
        try:
            with AnyReader([pathlib.Path(path)], default_typestore=self._typestore) as reader:
                topics = {name: info.msgtype or '' for name, info in reader.topics.items()}
                _check_topic(self.path, topics, depth_topic, (DEPTH_TYPE, COMPRESSED_DEPTH_TYPE),
                             'depth_topic')
                _check_topic(self.path, topics, camera_info_topic, (CAMERA_INFO_TYPE,),
                             'camera_info_topic')
                wanted = [c for c in reader.connections
                          if c.topic in (depth_topic, camera_info_topic)]
                for connection, log_ns, raw in reader.messages(connections=wanted):
                    if connection.topic == depth_topic:
                        self._log_ns.append(log_ns)
                        self._stamps_ns.append(log_ns if use_log_time
                                               else cdr_header_stamp(raw))
                    else:
                        self._info_log_ns.append(log_ns)
                        self._infos.append(camera_info_data(
                            reader.deserialize(raw, CAMERA_INFO_TYPE)))
        except (AnyReaderError, OSError, ValueError, KeyError) as error:
            raise SourceError(f"cannot read depth from bag '{path}': {error}") from None

    def describe(self) -> dict[str, Any]:
        """Topics and message counts, for the report."""
        return {'depth_topic': self.depth_topic, 'depth_frames': len(self._log_ns),
                'camera_info_topic': self.camera_info_topic,
                'camera_infos': len(self._info_log_ns)}

    def depth_for(self, stamp: float, bag_time: float, tolerance: float, *,
                  size: tuple[int, int] | None = None
                  ) -> tuple[DepthData | LiftError | None, float | None]:
        """The depth frame nearest to a colour frame's stamp within tolerance, among those
        logged by bag_time + DEPTH_WAIT, and its stamp; (None, None) when there is none.

        A compressedDepth frame is decoded here: one that cannot be (or that declares another
        size than `size`, the colour image's) gives the LiftError that says why.
        """
        logged = bisect.bisect_right(self._log_ns, round((bag_time + DEPTH_WAIT) * 1e9))
        best, best_gap = None, tolerance
        for index in range(logged):
            gap = abs(self._stamps_ns[index] * 1e-9 - stamp)
            if gap <= best_gap:
                best, best_gap = index, gap
        if best is None:
            return None, None
        try:
            depth = self._read_depth(self._log_ns[best], size)
        except LiftError as error:
            return error, self._stamps_ns[best] * 1e-9
        return depth, self._stamps_ns[best] * 1e-9

    def camera_info_at(self, bag_time: float) -> CameraInfoData | None:
        """The last CameraInfo logged by bag_time + DEPTH_WAIT (None before the first)."""
        index = bisect.bisect_right(self._info_log_ns, round((bag_time + DEPTH_WAIT) * 1e9))
        return self._infos[index - 1] if index else None

    def lift(self, parsed: ParsedAnswer, image_size: tuple[int, int], frame_stamp: float,
             bag_time: float, settings: DepthSettings) -> tuple[Lifted, float | None]:
        """An answer about the frame of `frame_stamp`, asked at bag_time, lifted into 3D, and
        the stamp of the depth frame used (None when none matched).
        """
        if not parsed.trajectories and not parsed.boxes:
            return Lifted(LiftStatus.NONE, 'the answer holds no points or boxes to lift'), None
        depth, depth_stamp = self.depth_for(frame_stamp, bag_time, settings.tolerance,
                                            size=image_size)
        if isinstance(depth, LiftError):
            return Lifted(depth.status, str(depth)), depth_stamp
        lifted = lift_answer(parsed.trajectories, parsed.boxes, image_size,
                             camera_info=self.camera_info_at(bag_time), depth=depth,
                             settings=settings.lift)
        return lifted, depth_stamp

    def _read_depth(self, log_ns: int, size: tuple[int, int] | None) -> DepthData:
        with self._reader_type([pathlib.Path(self.path)],
                               default_typestore=self._typestore) as reader:
            connections = [c for c in reader.connections if c.topic == self.depth_topic]
            for connection, _, raw in reader.messages(connections=connections, start=log_ns,
                                                      stop=log_ns + 1):
                message: Any = reader.deserialize(raw, connection.msgtype)
                if connection.msgtype == COMPRESSED_DEPTH_TYPE:
                    return decode_compressed_depth(str(message.format), message.data,
                                                   expected_size=size)
                return DepthData(encoding=str(message.encoding), width=int(message.width),
                                 height=int(message.height), step=int(message.step),
                                 data=message.data, is_bigendian=bool(message.is_bigendian))
        raise SourceError(f"bag '{self.path}': the depth frame logged at {log_ns} ns on "
                          f"'{self.depth_topic}' could not be read again")


def check_depth_topics(source: FrameSource, depth_topic: str, camera_info_topic: str) -> None:
    """Check, without reading messages, that a source can give depth for lifting.

    Raises:
        SourceError: the source is a clip, or a topic is missing or of another type.
    """
    from rosbags.highlevel import AnyReader, AnyReaderError

    if source.kind != 'bag':
        raise SourceError(f"'{source.path}' is a clip: depth ('{depth_topic}') can only come "
                          'from a bag; remove depth_topic and trajectory_3d from its items')
    try:
        with AnyReader([pathlib.Path(source.path)]) as reader:
            topics = {name: info.msgtype or '' for name, info in reader.topics.items()}
    except (AnyReaderError, OSError, ValueError, KeyError) as error:
        raise SourceError(f"cannot read depth from bag '{source.path}': {error}") from None
    _check_topic(source.path, topics, depth_topic, (DEPTH_TYPE, COMPRESSED_DEPTH_TYPE),
                 'depth_topic')
    _check_topic(source.path, topics, camera_info_topic, (CAMERA_INFO_TYPE,),
                 'camera_info_topic')


def _check_topic(path: str, topics: dict[str, str], topic: str, msgtypes: tuple[str, ...],
                 field: str) -> None:
    if topics.get(topic) in msgtypes:
        return
    candidates = ', '.join(sorted(name for name, kind in topics.items() if kind in msgtypes))
    found = (f'is a {topics[topic]}' if topic in topics else 'is not in it')
    kinds = ' or '.join(msgtype.rsplit('/', 1)[-1] for msgtype in msgtypes)
    raise SourceError(
        f"bag '{path}': {field} '{topic}' {found}; its {kinds} topics: "
        f"{candidates or 'none'} (set {field} in the question set, or --"
        f"{field.replace('_', '-')})")


__all__ = ['CAMERA_INFO_TYPE', 'COMPRESSED_DEPTH_TYPE', 'DEPTH_TYPE', 'DEPTH_WAIT',
           'DepthSettings', 'DepthTrack', 'check_depth_topics']

"""Frames from files: video clips (with their real timestamps), single images, image folders.

The command line and the evaluator feed these into the same FrameWindow the node uses.
"""

from collections.abc import Callable, Iterator
import pathlib

import cv2
import numpy as np

from cosmos_reason_ros.core.errors import InvalidRequestError

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.webp', '.tif', '.tiff')
VIDEO_SUFFIXES = ('.mp4', '.mkv', '.avi', '.mov', '.webm')
StampedLoader = tuple[float, Callable[[], np.ndarray]]
"""A frame's time in seconds and a callable that returns it as RGB: the window calls it only
for frames it keeps, so skipped frames are never converted."""


def read_image(path: str | pathlib.Path) -> np.ndarray:
    """Read an image file as RGB uint8 (alpha dropped, 16-bit scaled to 8).

    Raises:
        InvalidRequestError: the file is missing or not an image OpenCV can decode.
    """
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InvalidRequestError(f"cannot read '{path}' as an image (missing or not decodable)")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def iter_video(path: str | pathlib.Path) -> Iterator[StampedLoader]:
    """Decode a clip frame by frame: (presentation time in seconds from the start, loader).

    Raises:
        InvalidRequestError: the file cannot be opened or holds no video stream.
    """
    import av  # PyAV: exact presentation timestamps, unlike OpenCV's frame-rate guess

    try:
        container = av.open(str(path))
    except (OSError, av.error.FFmpegError) as error:
        raise InvalidRequestError(f"cannot open video '{path}': {error}") from None
    with container:
        if not container.streams.video:
            raise InvalidRequestError(f"'{path}' has no video stream")
        stream = container.streams.video[0]
        first = None
        for frame in container.decode(stream):
            seconds = float(frame.time) if frame.time is not None else 0.0
            first = seconds if first is None else first
            yield seconds - first, (lambda frame=frame: frame.to_ndarray(format='rgb24'))


def iter_media(path: str | pathlib.Path, *, folder_fps: float = 4.0
               ) -> Iterator[StampedLoader]:
    """The frames of a clip, one image, or a folder of images (sorted by name, spaced at
    folder_fps), in time order.

    Raises:
        InvalidRequestError: a missing path, an unknown file type, or an empty folder.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InvalidRequestError(
                f"'{path}' holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        return ((index / folder_fps, (lambda file=file: read_image(file)))
                for index, file in enumerate(files))
    if not path.exists():
        raise InvalidRequestError(f"'{path}' does not exist")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return iter([(0.0, lambda: read_image(path))])
    if suffix in VIDEO_SUFFIXES:
        return iter_video(path)
    raise InvalidRequestError(
        f"'{path}': unknown file type {suffix!r}; give a video ({', '.join(VIDEO_SUFFIXES)}), "
        'an image, or a folder of images')

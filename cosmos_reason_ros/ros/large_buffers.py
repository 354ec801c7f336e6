"""Keep the node process's large buffers in the heap, so camera frames do not page-fault.

Every frame passes through buffers of its full size (6 MB for 1080p bgr8): the serialized
message rclpy takes, its Python copy, the decoded image. glibc serves blocks that large with
mmap and hands them back to the kernel on free, so each frame faulted in ~15 MB of fresh zeroed
pages: measured, 12.6 ms of CPU per 1080p frame the window dropped, 5 ms with the buffers reused.
"""

import ctypes
import sys

MMAP_THRESHOLD = 32 * 2**20
"""Blocks up to this size come from the heap (glibc's largest allowed value on 64-bit)."""
TRIM_THRESHOLD = 64 * 2**20
"""Free memory at the top of a heap is kept up to this size (a few frames), not returned."""
ARENAS = 2
"""Heaps shared by all threads. Frames are taken on whichever executor thread is free, and a heap
per thread would each keep its own frame buffers (measured: +130 MiB with a 30 s window)."""

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def reuse_large_buffers() -> bool:
    """Tell glibc's malloc to keep frame-sized blocks for reuse (process-wide).

    Called by the node's executable only, not by ReasonNode: a library must not change the
    allocator of a process it is loaded into. Call it before threads start.

    Returns:
        True when the settings were applied; False on a C library without mallopt (musl,
        macOS), where nothing changes.
    """
    if not sys.platform.startswith('linux'):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return all([mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                mallopt(_M_ARENA_MAX, ARENAS)])


def give_back_free_memory() -> bool:
    """Return the heap's free memory to the kernel (glibc malloc_trim), after the model went.

    With the thresholds above, blocks up to 32 MiB (activations, small weights) come from the
    heap, and what they leave free stays with the process until trimmed. Safe to call from any
    thread; a no-op (False) without glibc.
    """
    if not sys.platform.startswith('linux'):
        return False
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim.argtypes = (ctypes.c_size_t,)
    malloc_trim.restype = ctypes.c_int
    return bool(malloc_trim(0))


__all__ = ['ARENAS', 'MMAP_THRESHOLD', 'TRIM_THRESHOLD', 'give_back_free_memory',
           'reuse_large_buffers']

"""An answer over several cameras in 3D: each camera's points and boxes lifted with that camera's
depth and CameraInfo, merged back into the answer's order.

The lifting itself is the caller's (one lift per camera, see geometry.lift_answer); this module
only splits an answer by the camera each item names and puts the per-camera results together,
so that the 3D lists stay parallel to the 2D ones.
"""

from collections.abc import Callable, Mapping, Sequence
import math
from typing import Any

from cosmos_reason_ros.core.answers.parsing import Box, Trajectory
from cosmos_reason_ros.core.depth.geometry import Box3D, Lifted, LiftStatus, Trajectory3D

_NAN3 = (math.nan, math.nan, math.nan)

LiftOne = Callable[[str, Sequence[Trajectory], Sequence[Box]], tuple[Lifted, float | None]]
"""Lift one camera's trajectories and boxes: (camera, trajectories, boxes) -> (Lifted, stamp of
the depth frame used or None)."""


def camera_of(item: Trajectory | Box, views: Sequence[str]) -> str:
    """The camera an answer's item is in: its own `camera`, or with one view, that view ('' on
    an item means the only view there is).
    """
    return views[0] if not item.camera and len(views) == 1 else item.camera


def lift_by_camera(trajectories: Sequence[Trajectory], boxes: Sequence[Box],
                   views: Sequence[str], lift: LiftOne) -> tuple[Lifted, float | None]:
    """Lift each view's items with `lift` and merge the results in the answer's order.

    Args:
        trajectories: the answer's trajectories, in the source pixels of the view each names.
        boxes: the answer's boxes, likewise.
        views: the goal's camera names in prompt order; only these are lifted.
        lift: lifts one camera's items (called once per view that has items, in prompt order).

    Returns:
        The merged Lifted (see merge_lifted) and the stamp of the first depth frame used (None
        when none was).
    """
    by_camera: dict[str, Lifted] = {}
    depth_stamp = None
    for view in views:
        mine = [t for t in trajectories if camera_of(t, views) == view]
        my_boxes = [b for b in boxes if camera_of(b, views) == view]
        if not mine and not my_boxes:
            continue
        lifted, stamp = lift(view, mine, my_boxes)
        by_camera[view] = lifted
        if depth_stamp is None:
            depth_stamp = stamp
    return merge_lifted(trajectories, boxes, views, by_camera), depth_stamp


def merge_lifted(trajectories: Sequence[Trajectory], boxes: Sequence[Box],
                 views: Sequence[str], by_camera: Mapping[str, Lifted]) -> Lifted:
    """One Lifted for the whole answer from the Lifted of each camera's items.

    `by_camera[name]` lifted, in order, the trajectories and boxes of the answer that name
    `name` (see camera_of). The result's lists are parallel to `trajectories` and `boxes`: an
    item whose camera could not be lifted (no depth, no CameraInfo...) or that names no view of
    the goal is kept as an invalid entry (NaN), never dropped, so the i-th 3D item is always the
    i-th 2D item's.

    Status: NONE without items; OK when every camera with items lifted (each point and box then
    says whether it had valid depth); else the first failing camera's status, in prompt order.
    The message names the camera of each note (`camera 'wrist': ...`).
    """
    if not trajectories and not boxes:
        return Lifted(LiftStatus.NONE, 'the answer holds no points or boxes to lift')
    lifted_trajectories = _in_answer_order(
        trajectories, views, by_camera, lambda lifted: lifted.trajectories,
        lambda item: Trajectory3D(item.label, (_NAN3,) * len(item.points),
                                  (False,) * len(item.points)))
    lifted_boxes = _in_answer_order(boxes, views, by_camera, lambda lifted: lifted.boxes,
                                    lambda item: Box3D(item.label, _NAN3, _NAN3, False, 0))
    notes = []
    status = LiftStatus.OK
    for name in views:
        lifted = by_camera.get(name)
        if lifted is None:
            continue
        if lifted.status is not LiftStatus.OK and status is LiftStatus.OK:
            status = lifted.status
        if lifted.message:
            notes.append(f"camera '{name}': {lifted.message}" if name else lifted.message)
    stray = sum(camera_of(item, views) not in views for item in (*trajectories, *boxes))
    if stray:
        notes.append(f'{stray} trajectories or boxes name no camera of the goal '
                     f"({', '.join(repr(view) for view in views)}): not lifted")
        if not by_camera:
            status = LiftStatus.NONE
    return Lifted(status, '; '.join(notes), lifted_trajectories, lifted_boxes)


def _in_answer_order(items: Sequence[Trajectory] | Sequence[Box], views: Sequence[str],
                     by_camera: Mapping[str, Lifted], lifted_of: Callable[[Lifted], tuple],
                     invalid: Callable[[Any], Any]) -> tuple:
    """The 3D item of each 2D item, in the answer's order: the next one its camera lifted,
    or `invalid(item)` where its camera could not be lifted or is not a view of the goal.
    """
    taken = dict.fromkeys(by_camera, 0)  # items of each camera used so far
    merged = []
    for item in items:
        name = camera_of(item, views)
        lifted = by_camera.get(name)
        if lifted is not None and lifted.status is LiftStatus.OK:
            merged.append(lifted_of(lifted)[taken[name]])
        else:
            merged.append(invalid(item))
        if name in taken:
            taken[name] += 1
    return tuple(merged)


__all__ = ['LiftOne', 'camera_of', 'lift_by_camera', 'merge_lifted']

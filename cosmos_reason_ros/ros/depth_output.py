"""An answer in 3D as ROS messages: the result's 3D fields and RViz markers.

Each 3D item is in the optical frame of the camera its 2D item names (one frame for one camera):
its header and `camera` are that view's, taken from the result's 2D items and views.
"""


from geometry_msgs.msg import Point, Vector3
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from cosmos_reason_ros.core.camera.images import stamp_seconds
from cosmos_reason_ros.core.depth import geometry
from cosmos_reason_ros.core.depth.geometry import Lifted, LiftStatus
from cosmos_reason_ros.msg import BoundingBox3D, ReasoningResult, Trajectory3D
from cosmos_reason_ros.ros.conversions import to_time

_PATH = ColorRGBA(r=0.16, g=0.86, b=0.24, a=1.0)
_BOX = ColorRGBA(r=0.16, g=0.86, b=0.24, a=0.35)
_LINE_WIDTH = 0.01
_WAYPOINT_SIZE = 0.03


def fill_lifted(msg: ReasoningResult, lifted: Lifted, depth_stamp: float | None) -> None:
    """Set the result's 3D fields from an answer lifted in the order of msg's 2D trajectories and
    boxes (filled first): each 3D item takes the camera of its 2D item, and a trajectory its
    header (the stamp and optical frame of that camera's last frame; the result's header with
    one camera).
    """
    msg.lift_status = int(lifted.status)
    msg.lift_message = lifted.message
    if depth_stamp is not None:
        msg.depth_stamp = to_time(depth_stamp)
    flat = [(msg.header, '')] * len(lifted.trajectories)
    of_2d = [(t.header, t.camera) for t in msg.trajectories]
    msg.trajectories_3d = [
        Trajectory3D(header=header, camera=camera, label=trajectory.label,
                     points=[Point(x=x, y=y, z=z) for x, y, z in trajectory.points],
                     valid=list(trajectory.valid))
        for trajectory, (header, camera) in zip(lifted.trajectories, of_2d or flat)]
    box_cameras = [box.camera for box in msg.boxes] or [''] * len(lifted.boxes)
    msg.boxes_3d = [
        BoundingBox3D(camera=camera, label=box.label,
                      center=Point(x=box.centre[0], y=box.centre[1], z=box.centre[2]),
                      size=Vector3(x=box.size[0], y=box.size[1], z=box.size[2]),
                      valid=box.valid, depth_pixels=box.depth_pixels)
        for box, camera in zip(lifted.boxes, box_cameras)]


def lifted_from_msg(msg: ReasoningResult) -> tuple[Lifted, float | None]:
    """A result's 3D answer back into the core's Lifted, with the depth frame's stamp (None
    when none was used); the inverse of fill_lifted.
    """
    trajectories = tuple(
        geometry.Trajectory3D(trajectory.label, tuple((p.x, p.y, p.z) for p in trajectory.points),
                     tuple(bool(ok) for ok in trajectory.valid))
        for trajectory in msg.trajectories_3d)
    boxes = tuple(
        geometry.Box3D(box.label, (box.center.x, box.center.y, box.center.z),
              (box.size.x, box.size.y, box.size.z), bool(box.valid), int(box.depth_pixels))
        for box in msg.boxes_3d)
    stamp = msg.depth_stamp
    depth_stamp = stamp_seconds(stamp) if (stamp.sec or stamp.nanosec) else None
    return (Lifted(LiftStatus(msg.lift_status), msg.lift_message, trajectories, boxes),
            depth_stamp)


def markers_of(msg: ReasoningResult) -> MarkerArray:
    """RViz markers of a result's 3D answer: each path as a line through its valid waypoints,
    the waypoints as spheres, each valid box as a cube, each in the optical frame of its camera;
    the previous answer's are deleted.
    """
    markers = [Marker(header=msg.header, action=Marker.DELETEALL)]
    for index, trajectory in enumerate(msg.trajectories_3d):
        points = [point for point, ok in zip(trajectory.points, trajectory.valid) if ok]
        if not points:
            continue
        header = trajectory.header
        markers.append(Marker(header=header, ns='trajectory', id=index,
                              type=Marker.LINE_STRIP, action=Marker.ADD, points=points,
                              scale=Vector3(x=_LINE_WIDTH), color=_PATH))
        markers.append(Marker(header=header, ns='waypoints', id=index,
                              type=Marker.SPHERE_LIST, action=Marker.ADD, points=points,
                              scale=Vector3(x=_WAYPOINT_SIZE, y=_WAYPOINT_SIZE,
                                            z=_WAYPOINT_SIZE), color=_PATH))
    view_headers = {view.name: Header(stamp=view.stamps[-1], frame_id=view.frame_id)
                    for view in msg.views if view.stamps}
    for index, box in enumerate(msg.boxes_3d):
        if not box.valid:
            continue
        header = view_headers.get(box.camera, msg.header) if box.camera else msg.header
        marker = Marker(header=header, ns='boxes', id=index, type=Marker.CUBE,
                        action=Marker.ADD, color=_BOX, text=box.label,
                        scale=Vector3(x=max(box.size.x, 0.005), y=max(box.size.y, 0.005),
                                      z=max(box.size.z, 0.005)))
        marker.pose.position = box.center
        marker.pose.orientation.w = 1.0
        markers.append(marker)
    return MarkerArray(markers=markers)


__all__ = ['fill_lifted', 'markers_of']

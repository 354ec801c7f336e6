"""An answer over several cameras in 3D: each camera's items lifted by that camera, in order."""

import math

from cosmos_reason_ros.core.answers.parsing import Box, Trajectory
from cosmos_reason_ros.core.depth.geometry import Box3D, Lifted, LiftStatus, Trajectory3D
from cosmos_reason_ros.core.depth.views import camera_of, lift_by_camera

Z = {'head': 2.0, 'wrist': 0.5}


def fake_lift(failing: dict[str, LiftStatus] | None = None):
    """Lifts every point to (u, v, Z of its camera); records the calls."""
    calls = []
    failing = failing or {}

    def lift(camera, trajectories, boxes):
        calls.append((camera, [t.label for t in trajectories], [b.label for b in boxes]))
        if camera in failing:
            return Lifted(failing[camera], f'no depth on {camera}/depth'), None
        return Lifted(LiftStatus.OK, '', tuple(
            Trajectory3D(t.label, tuple((u, v, Z[camera]) for u, v in t.points),
                         (True,) * len(t.points)) for t in trajectories), tuple(
            Box3D(b.label, (0.0, 0.0, Z[camera]), (0.1, 0.1, 0.0), True, 50) for b in boxes)
        ), 100.0 + len(calls)

    return lift, calls


def test_each_item_is_lifted_by_the_camera_it_names_and_stays_in_answer_order():
    trajectories = [Trajectory('a', ((1.0, 2.0),), 'wrist'),
                    Trajectory('b', ((3.0, 4.0),), 'head'),
                    Trajectory('c', ((5.0, 6.0),), 'wrist')]
    boxes = [Box('box', 0, 0, 1, 1, 'head')]
    lift, calls = fake_lift()

    lifted, depth_stamp = lift_by_camera(trajectories, boxes, ['head', 'wrist'], lift)

    assert calls == [('head', ['b'], ['box']), ('wrist', ['a', 'c'], [])]  # prompt order
    assert lifted.status is LiftStatus.OK and lifted.message == ''
    assert [t.label for t in lifted.trajectories] == ['a', 'b', 'c']
    assert [t.points[0][2] for t in lifted.trajectories] == [0.5, 2.0, 0.5]
    assert lifted.boxes[0].centre[2] == 2.0
    assert depth_stamp == 101.0  # the first camera's depth frame


def test_a_camera_that_cannot_be_lifted_leaves_invalid_entries_and_names_itself():
    trajectories = [Trajectory('a', ((1.0, 2.0), (2.0, 2.0)), 'wrist'),
                    Trajectory('b', ((3.0, 4.0),), 'head')]
    lift, _ = fake_lift({'wrist': LiftStatus.NO_DEPTH})

    lifted, _ = lift_by_camera(trajectories, [], ['head', 'wrist'], lift)

    assert lifted.status is LiftStatus.NO_DEPTH
    assert lifted.message == "camera 'wrist': no depth on wrist/depth"
    wrist, head = lifted.trajectories
    assert wrist.valid == (False, False) and all(math.isnan(x) for p in wrist.points for x in p)
    assert head.valid == (True,) and head.points == ((3.0, 4.0, 2.0),)


def test_an_item_naming_no_camera_of_the_goal_is_kept_invalid_and_reported():
    trajectories = [Trajectory('a', ((1.0, 2.0),), 'elbow'),
                    Trajectory('b', ((3.0, 4.0),), 'head')]
    lift, calls = fake_lift()

    lifted, _ = lift_by_camera(trajectories, [], ['head', 'wrist'], lift)

    assert [call[0] for call in calls] == ['head']
    assert lifted.status is LiftStatus.OK
    assert lifted.trajectories[0].valid == (False,) and lifted.trajectories[1].valid == (True,)
    assert '1 trajectories or boxes name no camera of the goal' in lifted.message


def test_with_one_view_an_item_without_a_camera_is_in_that_view():
    assert camera_of(Trajectory('a', ()), ['wrist']) == 'wrist'
    assert camera_of(Trajectory('a', ()), ['head', 'wrist']) == ''
    lifted, _ = lift_by_camera([], [], ['head'], fake_lift()[0])
    assert lifted.status is LiftStatus.NONE

"""`ros2 run cosmos_reason_ros ask`: send one goal, print feedback and the result as JSON.

Feedback goes to stderr as one JSON object a line; the result goes to stdout, so
`ask ... > result.json` keeps the answer. The exit status is 0 only when the goal succeeded.
`--camera NAME` (repeatable) picks the node's cameras; with named cameras the output starts with
the views used (camera, size, frames, missing slots).
`ask --watch NAME` asks nothing and follows a monitor instead (ros/watch.py).
"""

import argparse
import json
import sys
import time

import cv2
import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.core.answers.modes import Mode
from cosmos_reason_ros.core.answers.parsing import ParseStatus
from cosmos_reason_ros.core.errors import Failure, SUCCEEDED
from cosmos_reason_ros.ros.client import DEFAULT_ACTION, GoalFailedError, make_goal, ReasonClient
from cosmos_reason_ros.ros.messages import message_to_dict
from cosmos_reason_ros.ros.watch import watch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of `ask`."""
    parser = argparse.ArgumentParser(prog='ask', description=__doc__.split('\n')[0])
    parser.add_argument('task', nargs='?', default='', help='question or task instruction')
    parser.add_argument('--mode', default=Mode.QUESTION.value,
                        choices=[mode.value for mode in Mode])
    parser.add_argument('--choice', action='append', default=[], dest='choices',
                        help='a multiple-choice option (repeat for each)')
    parser.add_argument('--object-name', default='', help='object to locate (grounding)')
    parser.add_argument('--reasoning', action='store_true', help='think step by step first')
    parser.add_argument('--window', type=float, default=0.0, help='window length in seconds')
    parser.add_argument('--max-frames', type=int, default=0)
    parser.add_argument('--max-new-tokens', type=int, default=0)
    parser.add_argument('--greedy', action='store_true', help='deterministic decoding')
    parser.add_argument('--seed', type=int, default=-1)
    parser.add_argument('--camera', action='append', default=[], dest='cameras',
                        metavar='NAME', help="ask about this camera of the node's `cameras` "
                        '(repeat for several, in prompt order; none: every camera)')
    parser.add_argument('--image', action='append', default=[],
                        help='ask about this image file instead of the camera (repeatable)')
    parser.add_argument('--action', default=DEFAULT_ACTION, help='action name of the node')
    parser.add_argument('--timeout', type=float, default=300.0, help='seconds to wait')
    parser.add_argument('--wait-for-model', type=float, default=0.0, metavar='SECONDS',
                        help='resend the goal while the model is still loading')
    parser.add_argument('--window-end-in', type=float, default=0.0, metavar='SECONDS',
                        help='end the window this long after sending the goal: the node waits '
                        '(up to goal.frame_wait_timeout) for those frames, e.g. to let a camera '
                        'started just now fill the window')
    parser.add_argument('--quiet', action='store_true', help='no feedback lines')
    watching = parser.add_argument_group(
        'watching a monitor', "instead of a goal: print the monitor's current state and its "
        'change events as JSON lines until Ctrl-C (see docs/monitors.md)')
    watching.add_argument('--watch', metavar='NAME', default='',
                          help='the monitor to watch (~/monitors/NAME, ~/monitor_events)')
    watching.add_argument('--results', action='store_true',
                          help="also print every tick's result, not only the events")
    watching.add_argument('--add-file', metavar='MONITORS_YAML', default='',
                          help='add the monitors of this file (~/add_monitor) before watching')
    watching.add_argument('--count', type=int, default=0, metavar='N',
                          help='stop after N events (0: at Ctrl-C)')
    args = parser.parse_args(argv)
    if args.watch and args.task:
        parser.error('--watch asks nothing: leave out the task')
    if (args.results or args.add_file or args.count) and not args.watch:
        parser.error('--results, --add-file and --count go with --watch NAME')
    return args


def build_goal(args: argparse.Namespace) -> Reason.Goal:
    """The goal the options describe."""
    return make_goal(
        args.task, args.mode, choices=args.choices, object_name=args.object_name,
        reasoning=args.reasoning, window_duration=args.window, max_frames=args.max_frames,
        max_new_tokens=args.max_new_tokens, greedy=args.greedy, seed=args.seed,
        compressed_images=[_image_file(path) for path in args.image], cameras=args.cameras)


def _image_file(path: str) -> CompressedImage:
    try:
        with open(path, 'rb') as stream:
            data = stream.read()
    except OSError as error:
        raise SystemExit(f'ask: cannot read --image {path}: {error.strerror}') from None
    if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) is None:
        raise SystemExit(f'ask: {path} is not an image OpenCV can read')
    return CompressedImage(format=path.rsplit('.', 1)[-1].lower(), data=data)


def status_name(error_code: int) -> str:
    """'succeeded', or the failure's name as the evaluation reports write it ('no_frames')."""
    failure = Failure.from_result_code(error_code)
    return SUCCEEDED if failure is None else failure.value


def result_to_dict(result: Reason.Result) -> dict:
    """The result as JSON-ready data, the parse status in the evaluation report's words ('ok',
    'failed', 'truncated', 'not_run'), as `cosmos-reason run` prints it.
    """
    data = message_to_dict(result)
    data['output']['parse_status'] = ParseStatus(result.output.parse_status).name.lower()
    return data


def views_summary(output) -> list[dict]:
    """The views a result used, in prompt order, one line each: the camera, its source size,
    how many frames the model saw and how many slots it had no frame for ('' names the one
    unnamed camera).
    """
    return [{'camera': view.name, 'size': [view.image_width, view.image_height],
             'frames': len(view.stamps), 'missing': len(view.missing_stamps)}
            for view in output.views]


def _ask(client: ReasonClient, goal: Reason.Goal, on_feedback,
         timeout: float) -> tuple[bool, Reason.Result]:
    """(whether the goal succeeded, its result); a failed goal's result says why."""
    try:
        return True, client.ask(goal, on_feedback, timeout=timeout)
    except GoalFailedError as error:
        if not error.result.message:
            error.result.message = str(error)
        return False, error.result


def main(argv: list[str] | None = None) -> int:
    """Send the goal, stream feedback to stderr, print the result to stdout."""
    args = parse_args(rclpy.utilities.remove_ros_args(argv or sys.argv)[1:])
    if args.watch:
        return watch(args, argv)
    goal = build_goal(args)
    rclpy.init(args=argv)
    node = Node('cosmos_reason_ask')
    client = ReasonClient(node, args.action)
    try:
        if not client.wait_for_server(timeout=min(args.timeout, 30.0)):
            print(json.dumps({'error': f"no action server at '{args.action}': is the node "
                              'running? (check the namespace and --action)'}), file=sys.stderr)
            return 2

        def on_feedback(feedback: Reason.Feedback) -> None:
            if not args.quiet:
                print(json.dumps({'feedback': message_to_dict(feedback)}), file=sys.stderr,
                      flush=True)

        def send() -> tuple[bool, Reason.Result]:
            if args.window_end_in > 0:
                end = node.get_clock().now() + Duration(seconds=args.window_end_in)
                goal.window_end = end.to_msg()
            return _ask(client, goal, on_feedback, args.timeout)

        deadline = time.monotonic() + args.wait_for_model
        succeeded, result = send()
        while (result.error_code == Reason.Result.MODEL_NOT_READY
               and time.monotonic() < deadline):
            time.sleep(1.0)
            succeeded, result = send()
        status = status_name(result.error_code) if result.error_code or succeeded else 'unknown'
        summary = {'status': status}
        if any(view.name for view in result.output.views):
            # Named cameras: the views up front; each trajectory and box says its `camera`.
            summary['views'] = views_summary(result.output)
        print(json.dumps({**summary, **result_to_dict(result)}, indent=2))
        return 0 if succeeded else 1
    except TimeoutError as error:
        print(json.dumps({'error': str(error)}), file=sys.stderr)
        return 3
    finally:
        client.destroy()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())

"""The reasoning node: camera frames in, the Reason action served, typed answers out.

A managed (lifecycle) node. configure reads the parameters and loads the model (the transition
returns when the load did: `ros2 lifecycle set` and Nav2's lifecycle manager wait for it, and
/diagnostics says `model_state: loading` meanwhile); activate subscribes to the camera and serves
goals; deactivate stops both (running goals end NOT_ACTIVE); cleanup frees the model and the
accelerator memory; shutdown works from every state. With `autostart` (the default) the node
walks itself to active, as a plain node would.

It only orchestrates: the window, the model, the prompts and the parser live in the core; the
camera input, /diagnostics and goal feedback in image_input, diagnostics and goal_progress.
With several cameras (parameter `cameras`) each camera has its own input, window and depth; a
goal's views are chosen and synchronised by the core (CameraWindows).
"""

import dataclasses
import math
import os
import threading
import time

from rcl_interfaces.msg import SetParametersResult
from rclpy.action import CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle.node import LifecycleNodeMixin
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.core.answers.families import image_shape, ImageShape
from cosmos_reason_ros.core.answers.overlay import draw_overlay, draw_views
from cosmos_reason_ros.core.backends.base import Backend, GenerationResult
from cosmos_reason_ros.core.backends.factory import create_backend
from cosmos_reason_ros.core.backends.loading import BackgroundLoad
from cosmos_reason_ros.core.camera.frames import FrameWindow
from cosmos_reason_ros.core.camera.views import CameraWindows
from cosmos_reason_ros.core.depth.geometry import Lifted, LiftStatus, points_without_depth
from cosmos_reason_ros.core.depth.views import camera_of, lift_by_camera
from cosmos_reason_ros.core.errors import (
    Failure,
    GenerationCancelled,
    LoadStopped,
    ModelLoadError,
    ModelNotReadyError,
    NotActiveError,
    ReasonError,
    result_code_of,
    ServerUnreachableError,
    ShuttingDownError,
)
from cosmos_reason_ros.core.monitors import InvalidMonitorError
from cosmos_reason_ros.core.reasoner import outcome_message, Reasoner, ReasonOutcome, ReasonRequest
from cosmos_reason_ros.core.scheduling import (
    GoalScheduler,
    GoalStop,
    StopReason,
    Ticket,
    TickYield,
)
from cosmos_reason_ros.msg import ReasoningResult
from cosmos_reason_ros.ros.action_qos import action_service_qos
from cosmos_reason_ros.ros.action_server import ReasonActionServer
from cosmos_reason_ros.ros.camera_topics import camera_topic
from cosmos_reason_ros.ros.conversions import (
    decode_goal_frames,
    empty_result_msg,
    goal_to_request,
    outcome_to_msg,
    rgb_to_image_msg,
)
from cosmos_reason_ros.ros.depth_input import DepthInput
from cosmos_reason_ros.ros.depth_output import fill_lifted, markers_of
from cosmos_reason_ros.ros.diagnostics import (
    CameraSnapshot,
    combined_stats,
    DiagnosticsPublisher,
    NodeSnapshot,
)
from cosmos_reason_ros.ros.goal_progress import GoalProgress
from cosmos_reason_ros.ros.image_input import ImageInput
from cosmos_reason_ros.ros.large_buffers import give_back_free_memory
from cosmos_reason_ros.ros.monitors import NodeMonitors
from cosmos_reason_ros.ros.parameters import (
    declare_node_parameters,
    NodeConfig,
    read_node_config,
    refuse_change,
)
from cosmos_reason_ros.ros.publishing import PublishGuard

Result = Reason.Result
NODE_NAME = 'cosmos_reason'
RETRY_FIRST = 1.0
"""Seconds before a configure that found the model server down is tried again; each failure
doubles the wait, up to RETRY_MAX."""
RETRY_MAX = 30.0
CLIENT_GRACE = 2.0
"""Seconds a goal runs before the node may decide its client is gone (discovery of a new
client's subscriptions can lag behind its goal request)."""
SERVER_CHECK_PERIOD = 10.0
"""Seconds between checks of a reachable model server while active (1 s while it is not)."""
STOP_TIMEOUT = 10.0
"""Longest wait (s) of deactivate and shutdown for stopped goals to end; a goal stops within one
decoding step, so this is only reached by a backend that hangs."""
_CANCEL_STATE_WAIT = 2.0


class _Goal:
    """One accepted goal: its request, its stop event, its place in the scheduler."""

    def __init__(self, handle: ServerGoalHandle):
        self.handle = handle
        self.stop = GoalStop()
        self.request: ReasonRequest | None = None
        self.refusal: Exception | None = None
        self.ticket: Ticket | None = None
        self.accepted = time.monotonic()


LOAD_STOP_WAIT = 1.0
"""Seconds shutdown waits for a configure to notice that its load was stopped."""

class ReasonNode(LifecycleNodeMixin, Node):
    """Serves ~/reason about the frames arriving on `image` (or `image/compressed`), or on
    `N/image` of each camera N named in `cameras`.
    """

    def __init__(self, **kwargs):
        Node.__init__(self, NODE_NAME, **kwargs)
        # Reentrant: `ros2 lifecycle get` answers while configure loads the model.
        LifecycleNodeMixin.__init__(self, callback_group=ReentrantCallbackGroup())
        declare_node_parameters(self)
        self._autostart = self.get_parameter('autostart').value
        self._slots_at_start = self._slots()
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._frames_group = MutuallyExclusiveCallbackGroup()
        self._lock = threading.Lock()
        self._goals_done = threading.Condition(self._lock)
        self._goals: dict[bytes, _Goal] = {}
        self._config: NodeConfig | None = None
        self._backend: Backend | None = None
        self._reasoner: Reasoner | None = None
        self._scheduler: GoalScheduler | None = None
        self._window: FrameWindow | None = None  # the first camera's
        self._windows: CameraWindows | None = None
        self._images = ImageInput(self, callback_group=self._frames_group,
                                  image_shape=lambda: self._image_shape)  # the first camera's
        # Every camera's input, kept across configures so that its counters run since start.
        self._inputs: dict[str, ImageInput] = {'': self._images}
        self._depths: dict[str, DepthInput] = {}
        self._load: BackgroundLoad | None = None
        self._server_backend: Backend | None = None
        self._model_name = self.get_parameter('model').value
        self._model_state = 'unloaded'
        self._model_error = ''
        self._unheld_format = ''  # why constrained answers did not match, recorded once
        self._active = False
        self._shutting_down = False
        self._loaded = threading.Event()
        self._started = threading.Event()  # autostart walked to active (or gave up)
        self._last_latency = 0.0
        self._goals_served = 0

        self._guard = PublishGuard(self.get_logger())
        self._result_pub = self.create_publisher(ReasoningResult, '~/result', 10)
        self._debug_pub = self.create_publisher(Image, '~/debug_image', 1)
        self._markers_pub = self.create_publisher(MarkerArray, '~/markers', 1)
        self._diagnostics = DiagnosticsPublisher(self, self._guard)
        self._monitors = NodeMonitors(self, self._guard, camera_now=self._now)
        self._server = ReasonActionServer(
            self, Reason, '~/reason', execute_callback=self._execute,
            goal_callback=lambda goal: GoalResponse.ACCEPT,
            handle_accepted_callback=self._on_accepted,
            cancel_callback=self._on_cancel, callback_group=ReentrantCallbackGroup(),
            result_timeout=self.get_parameter('result_timeout').value, **action_service_qos())
        # A steady clock: /diagnostics keeps flowing with use_sim_time and no /clock.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(self.get_parameter('diagnostics_period').value,
                          self._publish_diagnostics,
                          callback_group=MutuallyExclusiveCallbackGroup(), clock=steady)
        if not self._autostart:
            self._started.set()
        else:
            self._autostart_timer = self.create_timer(
                0.0, self._walk_to_active, callback_group=MutuallyExclusiveCallbackGroup(),
                clock=steady)
        # A model server that was down at configure is tried again (autostart only: under a
        # lifecycle manager the manager decides); while active, its state is re-checked.
        self._retry_at: float | None = None
        self._retry_delay = RETRY_FIRST
        self._next_server_check = 0.0
        self._clientless_checks = 0
        action = self.resolve_topic_name('~/reason')
        self._client_topics = (f'{action}/_action/feedback', f'{action}/_action/status')
        self.create_timer(1.0, self._watch, callback_group=MutuallyExclusiveCallbackGroup(),
                          clock=steady)

    @property
    def executor_threads(self) -> int:
        """Threads the executor needs: frames, diagnostics, the server watch, two for lifecycle
        transitions, two for the action's own bookkeeping, the monitors' timer (one tick at a
        time, whatever the number of monitors), and one per goal that may run at once. Queued
        goals hold no thread.
        """
        return 8 + self._slots_at_start

    def _slots(self) -> int:
        backend = self.get_parameter('backend').value
        return self.get_parameter('remote.max_concurrent').value if backend == 'openai' else 1

    @property
    def model_state(self) -> str:
        """'unloaded', 'loading', 'ready' or 'failed'."""
        return self._model_state

    @property
    def lifecycle_state(self) -> str:
        """The lifecycle state's label: 'unconfigured', 'configuring', 'active', ..."""
        return self._state_machine.current_state[1]

    @property
    def publish_errors(self) -> int:
        """Publishes (and goal status updates) that failed in the middleware so far."""
        return self._guard.errors

    def count_publish_error(self, error: Exception) -> None:
        """Count and log (throttled) a middleware error raised outside our own callbacks."""
        self._guard.failed('a callback', error)

    def wait_until_loaded(self, timeout: float) -> bool:
        """Block until a configure finished (or failed) and, with autostart, the node is
        active; True when the model is ready.
        """
        deadline = time.monotonic() + timeout
        self._loaded.wait(timeout)
        self._started.wait(max(0.0, deadline - time.monotonic()))
        return self._model_state == 'ready'

    # Lifecycle -----------------------------------------------------------------------------

    def _walk_to_active(self) -> None:
        """autostart: configure, then activate, as a node without a lifecycle manager would."""
        self._autostart_timer.cancel()
        try:
            if self.lifecycle_state == 'unconfigured' and \
                    self.trigger_configure() == TransitionCallbackReturn.SUCCESS and \
                    not self._shutting_down:
                self.trigger_activate()
        finally:
            self._started.set()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Read the parameters and load the model; returns when the load finished."""
        try:
            config = read_node_config(self, image_topic='image')
        except ValueError as error:
            return self._configure_failed(str(error))
        self._config = config
        try:
            refused = self._monitors.configure(config.monitors, config.monitors_file)
        except InvalidMonitorError as error:
            return self._configure_failed(str(error))
        for message in refused:  # the other monitors are kept
            self.get_logger().error(f'monitor refused: {message}')
        self._model_name = config.backend_settings.model_name
        self._set_up_cameras(config)
        self._model_state = 'loading'
        self._model_error = ''
        self._unheld_format = ''
        self._loaded.clear()
        self.get_logger().info(f"loading model '{self._model_name}'")
        try:
            # The API key of a remote backend comes from the variable remote.api_key_env names.
            backend = create_backend(config.backend_settings, environ=os.environ)
            # /diagnostics reports a model server's state, also when the load failed on it.
            self._server_backend = backend if backend.server_status() is not None else None
            self._load = BackgroundLoad(backend, self._model_name)
            if self._shutting_down:
                self._load.stop()
            self._load.wait()
        except LoadStopped as error:
            self._model_state = 'unloaded'
            # Logged before _loaded is set: a shutdown waits on it and may then end the process.
            self.get_logger().info(f'configure stopped: {error}')
            self._loaded.set()
            return TransitionCallbackReturn.FAILURE
        except ModelLoadError as error:
            return self._configure_failed(
                str(error), retry=isinstance(error, ServerUnreachableError) and self._autostart)
        self._backend = backend
        self._reasoner = Reasoner(backend, self._windows, config.goals,
                                  frame_wait_timeout=config.frame_wait_timeout,
                                  limits=config.limits)
        # The executor's pool was sized for the slots configured at start-up.
        self._scheduler = GoalScheduler(
            config.concurrency_policy,
            slots=min(config.backend_settings.max_concurrent, self._slots_at_start),
            max_queued=config.max_queued_goals,
            tick_yield=TickYield(config.monitors.goal_policy))
        self._model_state = 'ready'
        self._loaded.set()
        family = backend.family.value if backend.family else 'family unknown'
        self.get_logger().info(f"model '{self._model_name}' ready ({family})")
        return TransitionCallbackReturn.SUCCESS

    def _set_up_cameras(self, config: NodeConfig) -> None:
        """A window (and with depth on, a depth input) per camera; inputs made once per name."""
        windows: dict[str, FrameWindow] = {}
        depths: dict[str, DepthInput] = {}
        suffix = '/compressed' if config.compressed_input else ''
        for name in config.camera_names:
            topic = self.resolve_topic_name(camera_topic(name, 'image') + suffix)
            windows[name] = FrameWindow(dataclasses.replace(config.window, source=topic))
            if config.depth_enabled:
                depths[name] = DepthInput(
                    self, windows[name], tolerance=config.depth_tolerance,
                    settings=config.lift, transport=config.depth_transport,
                    capacity=config.depth_capacity, callback_group=self._frames_group,
                    camera=name)
            if name not in self._inputs:
                self._inputs[name] = ImageInput(self, callback_group=self._frames_group,
                                                image_shape=lambda: self._image_shape,
                                                camera=name)
        first = config.camera_names[0]
        self._windows = CameraWindows(windows, sync_tolerance=config.sync_tolerance)
        self._window, self._images, self._depths = windows[first], self._inputs[first], depths

    def _camera_inputs(self) -> list[ImageInput]:
        """The inputs of the configured cameras, in configuration order."""
        windows = self._windows
        return [self._inputs[name] for name in windows.names] if windows is not None else []

    def _configure_failed(self, message: str, retry: bool = False) -> TransitionCallbackReturn:
        self._model_error = message
        self._model_state = 'failed'
        self._loaded.set()
        if retry:
            self._retry_at = time.monotonic() + self._retry_delay
            self.get_logger().error(
                f'configure failed: {message} - trying again in {self._retry_delay:g} s (and '
                'on the next goal); goals get MODEL_NOT_READY meanwhile')
            self._retry_delay = min(2 * self._retry_delay, RETRY_MAX)
        else:
            self._retry_at = None
            self.get_logger().error(
                f'configure failed: {message} - the node stays unconfigured; fix the parameter '
                '(ros2 param set) and configure again. Goals get this error meanwhile')
        return TransitionCallbackReturn.FAILURE

    def _watch(self) -> None:
        """Once a second: stop goals nobody waits for; retry a configure that found the model
        server down; follow the server's state.
        """
        self._stop_goals_without_clients()
        now = time.monotonic()
        if (self._retry_at is not None and now >= self._retry_at and not self._shutting_down
                and self.lifecycle_state == 'unconfigured'):
            # _retry_at stays set while configure runs (goals read MODEL_NOT_READY); a failed
            # configure sets it anew or, for a failure retrying cannot fix, clears it.
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self._retry_at = None
                self._retry_delay = RETRY_FIRST
                if not self._shutting_down:
                    self.trigger_activate()
            return
        backend = self._backend
        if (backend is not None and self._active and now >= self._next_server_check
                and (status := backend.check_server()) is not None):
            healthy = status.serves_model
            self._next_server_check = now + (SERVER_CHECK_PERIOD if healthy else RETRY_FIRST)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the camera and serve goals."""
        config, windows = self._config, self._windows
        assert config is not None and windows is not None
        for name in windows.names:
            depth = self._depths.get(name)
            self._inputs[name].subscribe(windows.window(name), depth,
                                         compressed=config.compressed_input,
                                         dds_filter=config.dds_frame_filter,
                                         max_source_pixels=config.limits.max_source_pixels)
            if depth is not None:
                depth.subscribe(config.dds_frame_filter)
        self._active = True
        self._monitors.start(self._reasoner, self._scheduler, self._model_name)
        topics = "', '".join(images.topic for images in self._camera_inputs())
        self.get_logger().info(f"active: serving goals about '{topics}'")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop taking frames; running goals end NOT_ACTIVE, new ones are refused; monitors
        stop (a tick running is not published).
        """
        self._active = False
        self._monitors.stop()
        self._stop_goals(StopReason.DEACTIVATED)
        self._unsubscribe_frames()
        self.get_logger().info('inactive: no frames taken, goals refused')
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free the model (and the accelerator memory) and the frame window."""
        self._free_model()
        self.get_logger().info('unconfigured: model freed')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop everything, from whichever state the node is in."""
        self._active = False
        self._monitors.stop(StopReason.SHUTDOWN)
        self._stop_goals(StopReason.SHUTDOWN)
        self._unsubscribe_frames()
        self._free_model()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised: free what it held and go back to unconfigured."""
        self.get_logger().error(f'a lifecycle transition from {state.label} raised; freeing '
                                'the model, the node is unconfigured')
        self._active = False
        self._monitors.stop()
        self._stop_goals(StopReason.DEACTIVATED)
        self._unsubscribe_frames()
        self._free_model()
        return TransitionCallbackReturn.SUCCESS

    def _free_model(self) -> None:
        self._monitors.clear()
        backend, self._backend = self._backend, None
        self._server_backend = None
        self._reasoner = None
        self._scheduler = None
        if self._windows is not None:
            self._windows.clear()
        self._window = self._windows = None
        self._depths = {}
        if backend is not None:
            backend.close()
            give_back_free_memory()
        self._model_state = 'unloaded'

    def _stop_goals_without_clients(self) -> None:
        """Stop every goal once no action client is left (two checks in a row).

        rclpy does not tell which client sent a goal, only which clients are on the graph: a
        client that was killed (its planner crashed) is noticed once no client at all remains,
        i.e. once its feedback and status subscriptions are gone. Running goals then end
        CANCELED and queued ones are withdrawn, instead of holding the model for nobody.
        """
        now = time.monotonic()
        with self._lock:
            goals = [goal for goal in self._goals.values()
                     if now - goal.accepted > CLIENT_GRACE and not goal.stop.event.is_set()]
        if not goals or any(self.count_subscribers(topic) for topic in self._client_topics):
            self._clientless_checks = 0
            return
        self._clientless_checks += 1
        if self._clientless_checks < 2:
            return
        self.get_logger().warning(
            f'no action client is left on the graph: stopping {len(goals)} goal(s) whose '
            'client went away (a planner that crashed or was killed)')
        for goal in goals:
            if goal.stop.request(StopReason.CLIENT_GONE) and goal.ticket is not None and \
                    goal.ticket.withdraw():
                goal.handle.execute()  # a queued goal ends at once

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        reason = refuse_change([parameter.name for parameter in parameters],
                               self.lifecycle_state)
        return SetParametersResult(successful=reason is None, reason=reason or '')

    # Shutdown ------------------------------------------------------------------------------

    def begin_shutdown(self, timeout: float = STOP_TIMEOUT) -> int:
        """Stop for good (SIGINT, SIGTERM): refuse new goals, stop a load, end running goals.

        Running goals end SHUTTING_DOWN with a result their clients receive, so the executor
        must still be spinning. Returns the number of goals stopped.
        """
        self._shutting_down = True
        self._active = False
        self._monitors.stop(StopReason.SHUTDOWN, timeout)
        load = self._load
        if load is not None:
            load.stop()
            # A configure waiting on that load sees the stop on its own thread: let it answer
            # its caller and log before the process goes (seen missing under load on Jazzy).
            self._loaded.wait(LOAD_STOP_WAIT)
        return self._stop_goals(StopReason.SHUTDOWN, timeout)

    def finish_shutdown(self) -> None:
        """The shutdown transition from whichever primary state the node is in (the executor
        has stopped): frees the model. Safe to call twice.
        """
        if self.lifecycle_state in ('unconfigured', 'inactive', 'active'):
            self.trigger_shutdown()

    def destroy_node(self) -> None:
        """Stop goals, free the model, then destroy the action server and the node."""
        if not self._shutting_down:
            self.begin_shutdown()
        self.finish_shutdown()
        # rclpy's destroy_node() leaves the action server (a waitable) and the lifecycle state
        # machine alone. Each keeps the node, and with it the DDS participant and its shared
        # memory (a 64 MB segment with config/fastdds_large_frames.xml), alive until garbage
        # collection; the process's exit skips that (ros/process.py), which left the segments
        # in /dev/shm for good, two per run of the node.
        if self._server in self.waitables:  # not destroyed already
            self._server.destroy()
        super().destroy_node()
        self._state_machine.destroy_when_not_in_use()

    def _stop_goals(self, reason: StopReason, timeout: float = STOP_TIMEOUT) -> int:
        """Stop every goal for `reason` and wait (up to timeout) until each has ended."""
        with self._lock:
            goals = list(self._goals.values())
        for goal in goals:
            goal.stop.request(reason)
            if goal.ticket is not None and goal.ticket.withdraw():
                # A queued goal ends at once, with the reason. execute() publishes the goal
                # status: from the executor, not from the thread that stops (SIGINT's main).
                executor = self.executor
                if executor is not None:
                    executor.create_task(goal.handle.execute)
                else:
                    goal.handle.execute()
        deadline = time.monotonic() + timeout
        with self._goals_done:
            while self._goals and time.monotonic() < deadline:
                self._goals_done.wait(deadline - time.monotonic())
            left = len(self._goals)
        if left:
            self.get_logger().error(f'{left} goal(s) did not stop within {timeout:g} s')
        return len(goals)

    # Frames --------------------------------------------------------------------------------

    def _unsubscribe_frames(self) -> None:
        for images in self._inputs.values():
            images.unsubscribe()
        for depth in self._depths.values():
            depth.unsubscribe()
        if self._windows is not None:
            self._windows.clear()

    @property
    def _image_shape(self) -> ImageShape:
        """The shapes the model's processor takes (every family's while it is not known)."""
        backend = self._backend
        return image_shape(backend.family if backend is not None else None)

    # Goals ---------------------------------------------------------------------------------
    # A goal is accepted (a rejection cannot say why), checked, and queued in the scheduler;
    # its execute callback is started only when it may run (ros2/examples' queue server), so
    # a waiting goal holds no thread. Every goal ends through _execute, which sends the result.

    def _on_accepted(self, handle: ServerGoalHandle) -> None:
        goal = _Goal(handle)
        with self._lock:
            self._goals[bytes(handle.goal_id.uuid)] = goal
        try:
            self._check_serving()
            assert self._config is not None and self._scheduler is not None
            # Images are checked here but decoded only once the goal may run: a goal the
            # concurrency policy turns away (or queues) holds no decoded pixels.
            goal.request = goal_to_request(handle.request, self._config.window,
                                           self._config.limits, decode_images=False,
                                           shape=self._image_shape)
            goal.ticket = self._scheduler.admit(
                lambda ticket: self._start(goal, ticket),
                lambda ticket: goal.stop.request(StopReason.PREEMPTED))
        # Anything raised here would stop the executor: the goal ends with the error instead.
        except Exception as error:  # noqa: BLE001
            goal.refusal = error
            handle.execute()
            return
        if goal.stop.event.is_set() and goal.ticket.withdraw():
            handle.execute()  # stopped (cancel, deactivate) while it was being queued

    def _start(self, goal: _Goal, ticket: Ticket) -> None:
        """The scheduler's turn for a goal: run it, or end it if it was preempted queued."""
        goal.ticket = ticket
        if not ticket.running:
            goal.stop.request(StopReason.PREEMPTED)
        goal.handle.execute()

    def _retry_in(self) -> int:
        """Whole seconds until the next configure of a node whose model server was down (the
        watch that retries runs once a second).
        """
        retry_at = self._retry_at
        wait = 0.0 if retry_at is None else retry_at - time.monotonic()
        return max(1, math.ceil(wait))

    def _check_serving(self) -> None:
        if self._shutting_down:
            raise ShuttingDownError(f"the node '{self.get_name()}' is shutting down")
        if self._active:
            return
        state = self.lifecycle_state
        if self._model_state == 'failed':
            if self._retry_at is not None:
                # The server was down: not a failed load while the node retries. Try again now
                # (the watch runs once a second).
                self._retry_at = min(self._retry_at, time.monotonic())
                raise ModelNotReadyError(f'{self._model_error}; retrying in {self._retry_in()} '
                                         's (/diagnostics reports when the model is ready)')
            raise ModelLoadError(self._model_error)
        if self._model_state == 'loading' or not self._started.is_set():
            raise ModelNotReadyError(
                f"model '{self._model_name}' is still loading: retry in a few seconds "
                '(/diagnostics reports when it is ready)')
        action = 'activate it' if state == 'inactive' else 'configure and activate it'
        raise NotActiveError(
            f"the node '{self.get_fully_qualified_name()}' is {state}, not active: {action} "
            f'(ros2 lifecycle set {self.get_fully_qualified_name()} ...) or start it with '
            'autostart true')

    def _on_cancel(self, handle: ServerGoalHandle) -> CancelResponse:
        goal = self._goals.get(bytes(handle.goal_id.uuid))
        if goal is None or not goal.stop.request(StopReason.CANCELED):
            return CancelResponse.REJECT  # it has its answer already: the result follows
        if goal.ticket is not None and goal.ticket.withdraw():
            handle.execute()  # a queued goal ends at once
        return CancelResponse.ACCEPT

    def _execute(self, handle: ServerGoalHandle) -> Result:
        goal = self._goals[bytes(handle.goal_id.uuid)]
        config = self._config
        progress = GoalProgress(handle, config.feedback_period if config else 0.0, self._guard,
                                config.feedback_text_chars if config else 0,
                                started=goal.accepted)
        try:
            return self._run(goal, progress)
        finally:
            if goal.ticket is not None:
                goal.ticket.release()
            with self._goals_done:
                self._goals.pop(bytes(handle.goal_id.uuid), None)
                self._goals_done.notify_all()

    def _run(self, goal: _Goal, progress: GoalProgress) -> Result:
        try:
            if goal.refusal is not None:
                raise goal.refusal
            if goal.ticket is None or not goal.ticket.running or goal.stop.event.is_set():
                raise GenerationCancelled('stopped while waiting for the model')
            assert self._reasoner is not None and goal.request is not None
            request = goal.request
            if goal.handle.request.images or goal.handle.request.compressed_images:
                assert self._config is not None
                request = dataclasses.replace(request, frames=decode_goal_frames(
                    goal.handle.request, self._config.window, self._config.limits,
                    self._image_shape))
            outcome = self._reasoner.run(request, now=self._now(), on_stage=progress.stage,
                                         on_text=progress.text, cancel=goal.stop.event)
        except GenerationCancelled as error:
            reason = goal.stop.finish() or StopReason.CANCELED
            code, message = _stopped(reason, str(error))
            return self._finish(goal, code, message, progress,
                                canceled=reason is StopReason.CANCELED)
        except ReasonError as error:
            goal.stop.finish()
            return self._finish(goal, result_code_of(error), str(error), progress)
        except Exception as error:  # noqa: BLE001 - a model failure must not kill the node
            goal.stop.finish()
            self.get_logger().error(f'goal failed unexpectedly: {error!r}')
            return self._finish(goal, result_code_of(error), f'internal error: {error!r}',
                                progress)
        self._note_unheld_format(outcome.generation)
        msg = outcome_to_msg(outcome)
        lifted = self._lift(outcome, msg)
        # From the goal's acceptance, as documented: a wait in the goal queue is included.
        msg.total_time = progress.elapsed
        reason = goal.stop.finish()
        if reason is not None:
            # Stopped after the answer was generated: the stop wins (the client was told its
            # cancel was accepted), and the whole answer is kept.
            code, message = _stopped(reason, 'stopped after the answer was generated')
            return self._finish(goal, code, message, progress, output=msg,
                                canceled=reason is StopReason.CANCELED)
        self._guard.publish(self._result_pub, msg)
        if lifted is not None:
            self._guard.publish(self._markers_pub, markers_of(msg))
        self._publish_overlay(outcome, msg.header, lifted)
        self._last_latency = msg.total_time
        self._goals_served += 1
        return self._finish(goal, Result.SUCCESS, outcome_message(outcome, msg.total_time),
                            progress, output=msg)

    def _finish(self, goal: _Goal, code: int, message: str, progress: GoalProgress, *,
                output: ReasoningResult | None = None, canceled: bool = False) -> Result:
        """End the goal: SUCCEEDED for SUCCESS, CANCELED when its client's cancel stopped it,
        ABORTED otherwise; returns the result its client receives.
        """
        handle = goal.handle
        if code != Result.SUCCESS:
            self.get_logger().warning(
                f'goal ended with {Failure.from_result_code(code).value}: {message}')
        if output is None:
            output = empty_result_msg(goal.request, model_id=self._model_name,
                                      raw_text=progress.text_so_far)
        output.error_code = code  # also on an answer kept after a late stop
        if code == Result.SUCCESS:
            self._guard.call('goal status', handle.succeed)
        elif canceled and _wait_for_cancel_state(handle):
            self._guard.call('goal status', handle.canceled)
        else:
            self._guard.call('goal status', handle.abort)
        return Result(error_code=code, message=message, output=output)

    def _note_unheld_format(self, generation: GenerationResult) -> None:
        """Record once (log, /diagnostics) that an answer asked for under its format does not
        match it: a server that ignores the structured-output fields. An answer cut by
        max_new_tokens says nothing about the server.
        """
        if (not generation.unmatched_format or generation.finish_reason == 'length'
                or self._unheld_format):
            return
        server = self._backend.server_status() if self._backend is not None else None
        where = (f'{server.url} did not hold the structured-output fields'
                 if server is not None else 'the local grammar did not hold')
        self._unheld_format = f'{where} ({generation.unmatched_format})'
        self.get_logger().warning(
            f'{self._unheld_format}: such answers are reported with constrained false; check '
            'that the server supports remote.structured_output_fields, or set '
            'structured_output off')

    def _lift(self, outcome: ReasonOutcome, msg: ReasoningResult) -> Lifted | None:
        """With depth on, the answer in 3D, set into msg (its status says when it could not
        be lifted); None with depth off.
        """
        depths = self._depths
        if not depths:
            return None
        views = outcome.views or ()
        if len(views) <= 1:
            # One view (the only camera, one camera of several, or the goal's images): every
            # point and box is in it, lifted as with one camera.
            name = views[0].name if views else ''
            depth = depths.get(name)
            if depth is None:
                lifted, depth_stamp = Lifted(LiftStatus.NO_DEPTH, (
                    "the goal brought its own images: no camera's depth belongs to them")), None
            else:
                lifted, depth_stamp = depth.lift(outcome)
        else:
            def lift_one(camera, trajectories, boxes):
                view = outcome.view(camera)
                return depths[camera].lift_items(trajectories, boxes, view.frames[-1].stamp,
                                                 view.source_size)

            lifted, depth_stamp = lift_by_camera(
                outcome.parsed.trajectories, outcome.parsed.boxes,
                [view.name for view in views], lift_one)
        fill_lifted(msg, lifted, depth_stamp)
        return lifted

    def _publish_overlay(self, outcome: ReasonOutcome, header: Header,
                         lifted: Lifted | None = None) -> None:
        config = self._config
        if config is None or not config.publish_debug_image or \
                self._debug_pub.get_subscription_count() == 0:
            return
        parsed = outcome.parsed
        if len(outcome.views) > 1:
            image = draw_views(outcome.views, parsed,
                               no_depth=_points_without_depth_by_camera(outcome, lifted))
        else:
            image = draw_overlay(outcome.frames[-1].image, outcome.source_size,
                                 trajectories=parsed.trajectories, boxes=parsed.boxes,
                                 text=parsed.answer or parsed.error,
                                 no_depth=points_without_depth(parsed.trajectories, lifted))
        self._guard.publish(self._debug_pub, rgb_to_image_msg(image, header))

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # Diagnostics ---------------------------------------------------------------------------

    def _sim_time_waiting(self) -> bool:
        """use_sim_time is on and no /clock message has arrived yet."""
        return self.get_parameter('use_sim_time').value and \
            self.get_clock().now().nanoseconds == 0

    def _publish_diagnostics(self) -> None:
        self._diagnostics.publish(self._snapshot())

    def _snapshot(self) -> NodeSnapshot:
        """The node's state, as /diagnostics reports it."""
        scheduler, backend = self._scheduler, self._backend
        ready = backend is not None and self._model_state == 'ready'
        server_backend = self._server_backend
        sim_time = self.get_parameter('use_sim_time').value
        windows = self._windows
        inputs = self._camera_inputs() or [self._images]
        images = inputs[0]
        cameras = self._camera_snapshots(sim_time) if len(inputs) > 1 or images.camera else ()
        if cameras:  # named cameras: the top-level counters are the sums over the cameras
            window = combined_stats([camera.window for camera in cameras
                                     if camera.window is not None])
            topic = ', '.join(camera.topic for camera in cameras)
            stream_rate = None  # per camera
            filters = {each.frame_filter for each in inputs}
            frame_filter = filters.pop() if len(filters) == 1 else 'mixed'
        else:
            window = windows.window(images.camera).stats if windows is not None else None
            topic = images.topic
            stream_rate = None if sim_time else images.rate(time.monotonic())
            frame_filter = images.frame_filter
        return NodeSnapshot(
            lifecycle_state=self.lifecycle_state, shutting_down=self._shutting_down,
            model=self._model_name, model_state=self._model_state,
            model_error=self._model_error,
            retry_in=self._retry_in() if self._retry_at is not None else None,
            backend=self.get_parameter('backend').value,
            serving_server=backend.server_status() if backend is not None else None,
            server=server_backend.server_status() if server_backend is not None else None,
            window=window, topic=topic,
            frame_filter=frame_filter, frame_filter_reason=images.frame_filter_reason,
            frames_received=sum(each.frames_seen for each in inputs),
            frames_unreadable=sum(each.unreadable for each in inputs),
            goals_running=scheduler.busy - scheduler.ticking if scheduler else 0,
            goals_queued=scheduler.queued if scheduler else 0,
            goals_served=self._goals_served, last_latency=self._last_latency,
            publish_errors=self._guard.errors,
            stream_rate=stream_rate,
            sim_time_waiting=self._sim_time_waiting(),
            depth=self._depth_diagnostics(),
            structured_output=self.get_parameter('structured_output').value,
            can_constrain=backend.can_constrain if ready else None,
            unheld_format=self._unheld_format,
            monitors=tuple(self._monitors.stats()), cameras=cameras)

    def _camera_snapshots(self, sim_time: bool) -> tuple[CameraSnapshot, ...]:
        """Each configured camera's input and window, in configuration order."""
        windows = self._windows
        if windows is None:
            return ()
        now, wall = self._now(), time.monotonic()
        snapshots = []
        for images in self._camera_inputs():
            window = windows.window(images.camera)
            newest = window.newest_stamp
            snapshots.append(CameraSnapshot(
                name=images.camera, topic=images.topic, window=window.stats,
                frames_received=images.frames_seen, frames_unreadable=images.unreadable,
                stream_rate=None if sim_time else images.rate(wall),
                newest_age=None if newest is None else now - newest))
        return tuple(snapshots)

    def _depth_diagnostics(self) -> dict[str, str] | None:
        """The depth counters: as they are with one camera; with several, the sums and each
        camera's under camera.<name>.
        """
        depths = self._depths
        if not depths:
            return None
        if list(depths) == ['']:
            return depths[''].diagnostics()
        values: dict[str, str] = {}
        totals: dict[str, int] = {}
        for name, depth in depths.items():
            for key, value in depth.diagnostics().items():
                values[f'camera.{name}.{key}'] = value
                totals[key] = totals.get(key, 0) + int(value)
        return {**{key: str(total) for key, total in totals.items()}, **values}


def _points_without_depth_by_camera(outcome: ReasonOutcome, lifted: Lifted | None
                                    ) -> dict[str, list]:
    """Camera name -> the 2D points of its trajectories that had no valid depth."""
    names = [view.name for view in outcome.views]
    found: dict[str, list] = {}
    if lifted is None:
        return found
    for trajectory, lifted_trajectory in zip(outcome.parsed.trajectories, lifted.trajectories):
        points = [point for point, ok in zip(trajectory.points, lifted_trajectory.valid)
                  if not ok]
        found.setdefault(camera_of(trajectory, names), []).extend(points)
    return found


def _wait_for_cancel_state(handle: ServerGoalHandle) -> bool:
    """Rclpy marks a goal CANCELING only after the cancel callback returned, which set the stop
    event this goal already reacted to: wait (briefly) for that state, which canceled() needs.
    """
    deadline = time.monotonic() + _CANCEL_STATE_WAIT
    while not handle.is_cancel_requested and time.monotonic() < deadline:
        time.sleep(0.001)
    return handle.is_cancel_requested


def _stopped(reason: StopReason, detail: str):
    """The result code and message of a goal stopped for `reason`."""
    kind, what = {
        StopReason.CANCELED: (Failure.CANCELED, 'canceled'),
        StopReason.PREEMPTED: (Failure.PREEMPTED, 'preempted by a newer goal'),
        StopReason.DEACTIVATED: (Failure.NOT_ACTIVE, 'the node was deactivated'),
        StopReason.SHUTDOWN: (Failure.SHUTTING_DOWN, 'the node is shutting down'),
        StopReason.CLIENT_GONE: (Failure.CANCELED, 'no action client is left to read the result'),
    }[reason]
    return kind.result_code, f'{what}: {detail}'


def main(args=None) -> None:
    """Run the node until SIGINT/SIGTERM (ros2 run cosmos_reason_ros reason_node); exits 0."""
    from cosmos_reason_ros.ros.process import run_until_signal

    run_until_signal(ReasonNode, args)


__all__ = ['NODE_NAME', 'ReasonNode', 'main']

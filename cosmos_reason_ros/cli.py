"""`cosmos-reason`: the core without ROS. Parse model text, run a model on files, evaluate.

cosmos-reason parse --mode trajectory --image-size 1910x1190 < answer.txt
cosmos-reason run clip.mp4 --model nvidia/Cosmos-Reason2-2B --task 'Is it safe to turn right?'
cosmos-reason run frame.png --mode trajectory --task '...' --depth d.png --camera-info c.yaml
cosmos-reason eval bag/ --questions questions.yaml --topic /camera/image_raw --out report/
cosmos-reason eval bag/ --questions questions.yaml --backend openai --concurrency 8 --shard 1/4
cosmos-reason merge report/ shard1/report.json shard2/report.json shard3/report.json ...
cosmos-reason compare before/report.json after/report.json
"""

import argparse
import dataclasses
import enum
import json
import os
import pathlib
import sys
from typing import Any

from cosmos_reason_ros.core.answers.families import family_spec
from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.answers.parsing import parse_answer
from cosmos_reason_ros.core.backends import Backend
from cosmos_reason_ros.core.backends.factory import (
    BACKENDS,
    BackendSettings,
    create_backend,
    OPENAI,
    TRANSFORMERS,
)
from cosmos_reason_ros.core.backends.remote_config import FAMILIES, RemoteConfig
from cosmos_reason_ros.core.config import (
    GoalDefaults,
    ModelConfig,
    STRUCTURED_OUTPUT,
    WindowConfig,
)
from cosmos_reason_ros.core.errors import InvalidRequestError, ReasonError, SUCCEEDED
from cosmos_reason_ros.core.evaluation.asking import ReplaySettings
from cosmos_reason_ros.core.evaluation.depth_track import DepthSettings
from cosmos_reason_ros.core.evaluation.protocols import (
    LETTER,
    PROTOCOLS,
    Reason1Benchmark,
    REASONING,
)
from cosmos_reason_ros.eval_options import (
    add_decoding_options,
    add_frame_options,
    add_progress_option,
    add_question_set_options,
    add_report_option,
    add_topic_options,
    topic_overrides,
)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not WIDTHxHEIGHT, e.g. 1920x1080')
    return width, height


def to_jsonable(value: Any) -> Any:
    """Dataclasses, enums and tuples as JSON-ready dicts, names and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: to_jsonable(getattr(value, field.name))
                for field in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.name.lower() if isinstance(value, int) else value.value
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    return value


def _add_question_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--mode', default=Mode.QUESTION.value, choices=[m.value for m in Mode])
    parser.add_argument('--choice', action='append', default=[], dest='choices',
                        help='multiple-choice option (repeat for each)')
    parser.add_argument('--object-name', default='', help='object to locate (grounding)')


def _add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--backend', default=TRANSFORMERS, choices=BACKENDS,
                        help='transformers: load the model here; openai: use a vLLM/NIM server')
    parser.add_argument('--model', default=ModelConfig.model,
                        help='hub id or local checkpoint (transformers)')
    parser.add_argument('--revision', default='')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--dtype', default='auto', choices=['auto', 'bf16', 'fp16', 'fp32'])
    parser.add_argument('--local-files-only', action='store_true',
                        help='never contact the model hub')
    parser.add_argument('--base-url', default=RemoteConfig.base_url,
                        help='server URL up to /v1 (openai)')
    parser.add_argument('--base-urls', nargs='+', default=[], metavar='URL',
                        help='several servers in order of preference, each like --base-url; '
                             'a request that fails on one before any text moves to the next '
                             '(openai; replaces --base-url)')
    parser.add_argument('--session-key', default='',
                        help='key sent as the user field and x-session-id header, for '
                             'consistent-hash routers (openai; empty: none)')
    parser.add_argument('--served-model', default=RemoteConfig.served_model,
                        help='model name the server serves (openai)')
    parser.add_argument('--api-key-env', default='',
                        help='environment variable holding the API key (openai)')
    parser.add_argument('--remote-family', default='auto', choices=FAMILIES,
                        help="the served model's family (openai; auto: from its name)")
    parser.add_argument('--structured-output', default=GoalDefaults.structured_output,
                        choices=STRUCTURED_OUTPUT,
                        help='decode structured answers (trajectory, grounding, temporal, '
                             'multiple choice) under their format so that they parse '
                             '(auto: where the backend can)')
    parser.add_argument('--max-reasoning-tokens', type=int, default=0,
                        help='reasoning tokens at most before a constrained answer must start '
                             '(0: half of max-new-tokens)')


def _load_backend(args: argparse.Namespace) -> Backend:
    """Build and load the backend the options describe; a server is asked for up to
    `--concurrency` answers at once (at least its default).
    """
    concurrency = getattr(args, 'concurrency', 1)
    remote = RemoteConfig(base_url=args.base_url, base_urls=tuple(args.base_urls),
                          session_key=args.session_key, served_model=args.served_model,
                          api_key_env=args.api_key_env, family=args.remote_family)
    remote = dataclasses.replace(remote, max_concurrent=max(remote.max_concurrent, concurrency))
    backend = create_backend(BackendSettings(
        backend=args.backend,
        model=ModelConfig(model=args.model, revision=args.revision, dtype=args.dtype,
                          device=args.device, local_files_only=args.local_files_only),
        remote=remote), environ=os.environ)
    backend.load()
    return backend


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog='cosmos-reason', description=__doc__.split('\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)

    parse = commands.add_parser('parse', help='parse model output read from stdin')
    _add_question_options(parse)
    parse.add_argument('--image-size', type=_size, required=True, metavar='WxH',
                       help='source image size the coordinates map to')
    parse.add_argument('--family', default=ModelFamily.QWEN3_VL.value,
                       choices=[f.value for f in ModelFamily],
                       help='qwen3_vl (Reason2), cosmos3_edge, cosmos3_omni (Cosmos3-Nano/Super): '
                            '0-1000 coordinates; qwen2_5_vl (Reason1): model input pixels')
    parse.add_argument('--reasoning', action='store_true',
                       help='the prompt asked for reasoning (a cosmos3_edge answer then starts '
                            'inside <think>, so one without </think> was cut off)')
    parse.add_argument('--model-input-size', type=_size, metavar='WxH',
                       help='frame size the model saw (needed for qwen2_5_vl coordinates)')

    run = commands.add_parser('run', help='run a model on a video, an image or an image folder')
    run.add_argument('media', nargs='?',
                     help='video file, image file, or folder of images (one unnamed view)')
    run.add_argument('--view', action='append', default=[], metavar='NAME=MEDIA',
                     help='a named camera view: a video, image or image folder (repeat for '
                          'several cameras, in prompt order; instead of MEDIA)')
    run.add_argument('--task', default='', help='question or task instruction')
    _add_question_options(run)
    run.add_argument('--reasoning', action='store_true', help='think step by step first')
    _add_backend_options(run)
    run.add_argument('--fps', type=float, default=WindowConfig.target_fps,
                     help='frames per second kept from a video (and spacing of a folder)')
    run.add_argument('--window', type=float, default=0.0,
                     help='seconds of the clip, ending at its last frame (0: all of it)')
    run.add_argument('--max-frames', type=int, default=GoalDefaults.max_frames)
    run.add_argument('--max-pixels', type=int, default=WindowConfig.max_pixels,
                     help='pixel budget per frame')
    run.add_argument('--max-new-tokens', type=int, default=GoalDefaults.max_new_tokens)
    run.add_argument('--greedy', action='store_true', help='deterministic decoding')
    run.add_argument('--seed', type=int)
    run.add_argument('--stream', action='store_true', help='print tokens to stderr as they come')
    run.add_argument('--depth', metavar='FILE',
                     help='depth image aligned to the last frame (16-bit PNG in mm, 32-bit '
                          'float TIFF in m, or .npy): lifts trajectories and boxes to 3D')
    calibration = run.add_mutually_exclusive_group()
    calibration.add_argument('--camera-info', metavar='YAML',
                             help="the camera's calibration (camera_calibration's YAML)")
    calibration.add_argument('--intrinsics', metavar='FX,FY,CX,CY',
                             type=lambda text: [float(part) for part in text.split(',')],
                             help='pinhole intrinsics of the media, no distortion')

    evaluate = commands.add_parser(
        'eval', help='score a model on a recorded bag or clip with labelled questions')
    add_question_set_options(
        evaluate, source_name='source',
        source_help="rosbag2 bag (folder, .mcap or .db3) or video clip; default: the question "
                    "set's source (for a benchmark file: its video folder); without "
                    '--questions, a Reason1 benchmark folder (DATA with '
                    '<dataset>/<dataset>_benchmark_qa_pairs.json). Relative to the current '
                    'directory',
        questions_help='question set (YAML, see examples/questions_sample.yaml) or a '
                       'Cosmos-Reason1 benchmark file (JSON); paths inside it are relative to '
                       "the file's folder",
        questions_required=False)
    evaluate.add_argument('--protocol', choices=PROTOCOLS,
                          help="reason1-benchmark: NVIDIA's Cosmos-Reason1 benchmark procedure "
                               '(its prompt, sampling, answer extraction, retries of empty '
                               'answers; accuracy pooled over all items)')
    evaluate.add_argument('--answer-type', default=REASONING, choices=[REASONING, LETTER],
                          help='with --protocol: the reasoning variant (<think>/<answer>, '
                               "sampled; NVIDIA's default) or the letter variant (greedy)")
    evaluate.add_argument('--max-retries', type=int, default=Reason1Benchmark.max_retries,
                          help='with --protocol: extra attempts for an empty answer')
    add_topic_options(
        evaluate,
        topic_help="image topic of the bag (default: the question set's, or the only image "
                   'topic)',
        depth_topic_help='aligned depth topic of the bag (16UC1 mm or 32FC1 m), with '
                         '--camera-info-topic: answers are lifted into 3D and trajectory_3d is '
                         "scored (default: the question set's)",
        camera_info_topic_help="the colour camera's CameraInfo topic of the bag (default: the "
                               "question set's)")
    evaluate.add_argument('--depth-tolerance', type=float, default=DepthSettings.tolerance,
                          help="largest stamp difference (s) between an answer's frame and its "
                               "depth frame (as the node's depth.tolerance)")
    add_report_option(evaluate, default='eval_report',
                      help_text='folder for report.json, report.md and pictures')
    _add_backend_options(evaluate)
    add_frame_options(evaluate, fps_help='frames per second the window keeps (as the node)',
                      max_pixels_help='pixel budget per frame (as the node)')
    evaluate.add_argument('--window', type=float, default=GoalDefaults.window_duration,
                          help='seconds of history for items that set none')
    evaluate.add_argument('--max-frames', type=int, default=GoalDefaults.max_frames,
                          help='frames per question for items that set none')
    evaluate.add_argument('--max-new-tokens', type=int, default=GoalDefaults.max_new_tokens,
                          help='generation budget for items that set none')
    evaluate.add_argument('--max-frame-age', type=float, default=GoalDefaults.max_frame_age,
                          help='an item whose newest frame is older than this (a gap in the '
                               'recording) is an error')
    evaluate.add_argument('--frame-age-warning', type=float,
                          default=ReplaySettings.frame_age_warning,
                          help='answers whose newest frame is older than this are flagged')
    evaluate.add_argument('--window-memory', type=float,
                          default=ReplaySettings.window_memory_mib, metavar='MIB',
                          help='memory the window may use to hold the history items ask for '
                               "(whole clips for 'all'); longer histories are truncated, and "
                               'the report says so per item')
    add_decoding_options(evaluate, seed_help='sampler seed (with --sample)')
    evaluate.add_argument('--no-pictures', action='store_true',
                          help='skip the per-item pictures')
    evaluate.add_argument('--concurrency', type=int, default=1, metavar='N',
                          help='items in flight at once against a server (--backend openai); '
                               'frames are still read in order, and the report is the same as '
                               'with 1 apart from timings. The transformers backend answers '
                               'one at a time')
    evaluate.add_argument('--item-timeout', type=float, default=ReplaySettings.item_timeout,
                          metavar='SECONDS',
                          help='stop an item whose generation takes longer and record it as '
                               'failed; the run goes on (0: no limit)')
    evaluate.add_argument('--shard', metavar='I/N',
                          help='ask only shard I of N (1-based): the items at positions I, '
                               'I+N, I+2N, ...; join the shards with `cosmos-reason merge`')
    add_progress_option(evaluate)

    merge = commands.add_parser(
        'merge', help="join the shards' reports of `eval --shard` into the whole run's")
    merge.add_argument('out', help='folder for the merged report.json, report.md and pictures')
    merge.add_argument('reports', nargs='+', metavar='REPORT',
                       help="each shard's report.json (or the folder holding it)")

    compare = commands.add_parser('compare', help='what changed between two report.json files')
    compare.add_argument('a', help='the earlier report.json')
    compare.add_argument('b', help='the later report.json')
    compare.add_argument('--json', action='store_true', help='print JSON instead of Markdown')
    return parser


def command_parse(args: argparse.Namespace) -> int:
    """Parse stdin and print the parsed answer as JSON."""
    family = ModelFamily(args.family)
    parsed = parse_answer(sys.stdin.read(), Mode(args.mode), family=family,
                          source_size=args.image_size, model_input_size=args.model_input_size,
                          num_choices=len(args.choices), object_name=args.object_name,
                          starts_in_reasoning=(args.reasoning
                                               and family_spec(family).thinking_opens_answer))
    print(json.dumps(to_jsonable(parsed), indent=2))
    return 0


def command_run(args: argparse.Namespace) -> int:
    """Run the model on the media and print the outcome as JSON."""
    from cosmos_reason_ros.core.camera.frames import FrameWindow
    from cosmos_reason_ros.core.camera.media import iter_media
    from cosmos_reason_ros.core.camera.views import CameraWindows, DEFAULT_CAMERA
    from cosmos_reason_ros.core.reasoner import Reasoner, ReasonRequest

    views = _run_views(args)
    windows = {}
    for name, media in views.items():
        window = FrameWindow(WindowConfig(target_fps=args.fps, capacity=100_000,
                                          max_duration=float('inf'),
                                          max_pixels=args.max_pixels, source=media))
        for stamp, load in iter_media(media, folder_fps=args.fps):
            window.offer(stamp, load)
        _check_one_size(window, media)
        windows[name] = window
    span = max(window.stats.span for window in windows.values())
    defaults = GoalDefaults(window_duration=args.window or span + 1.0,
                            max_frames=args.max_frames, max_new_tokens=args.max_new_tokens,
                            structured_output=args.structured_output,
                            max_reasoning_tokens=args.max_reasoning_tokens)
    if len(windows) > 1 and args.depth is not None:
        raise InvalidRequestError('--depth lifts the answer of one view: leave it out with '
                                  'several --view')
    window = next(iter(windows.values()))
    depth_inputs = _depth_inputs(args, window)
    backend = _load_backend(args)
    request = ReasonRequest(mode=Mode(args.mode), task=args.task, choices=tuple(args.choices),
                            object_name=args.object_name, reasoning=args.reasoning,
                            greedy=args.greedy, seed=args.seed,
                            cameras=tuple(name for name in views if name))
    def print_text(text: str, _tokens: int) -> None:
        print(text, end='', file=sys.stderr, flush=True)

    on_text = print_text if args.stream else None
    source = window if DEFAULT_CAMERA in windows else CameraWindows(windows)
    outcome = Reasoner(backend, source, defaults).run(request, on_text=on_text)
    if args.stream:
        print(file=sys.stderr)
    summary = outcome_summary(outcome)
    if depth_inputs is not None:
        summary['lift'] = _lifted_summary(outcome, *depth_inputs)
    print(json.dumps(summary, indent=2))
    return 0


def _run_views(args: argparse.Namespace) -> dict[str, str]:
    """The media of `run`: camera name -> path ('' -> MEDIA for one unnamed view).

    Raises:
        InvalidRequestError: neither or both of MEDIA and --view, a --view without NAME=, a bad
            or repeated name.
    """
    from cosmos_reason_ros.core.camera.views import check_camera_names, DEFAULT_CAMERA

    if bool(args.media) == bool(args.view):
        raise InvalidRequestError('give the media (one view) or --view NAME=MEDIA (named views, '
                                  'repeatable), not both and not neither')
    if args.media:
        return {DEFAULT_CAMERA: args.media}
    views: dict[str, str] = {}
    for text in args.view:
        name, _, media = text.partition('=')
        if not name or not media:
            raise InvalidRequestError(f'--view {text!r}: write NAME=MEDIA, e.g. '
                                      '--view head=clip.mp4')
        if name in views:
            raise InvalidRequestError(f"--view names camera '{name}' twice: name each once")
        views[name] = media
    try:
        check_camera_names(list(views))
    except ValueError as error:
        raise InvalidRequestError(f'--view: {error}') from None
    return views


def _check_one_size(window, media: str) -> None:
    """A view's frames must have one size: the window keeps only the last size it saw, so say
    so before loading a model rather than answer about part of the input.
    """
    resize = window.last_resize
    if resize is not None:
        sizes = ' and '.join(f'{width}x{height}' for width, height in sorted(
            {resize.previous, resize.size}))
        raise InvalidRequestError(
            f"the images in '{media}' have different sizes ({sizes}): a model call takes "
            'frames of one size per view; resize them to one size or pass one image')


def _depth_inputs(args: argparse.Namespace, window):
    """The depth image and calibration given to `run`, read (and checked) before the model
    loads; None without --depth.
    """
    from cosmos_reason_ros.core.depth.files import (
        DepthFileError,
        load_camera_info,
        load_depth,
        pinhole,
    )

    if args.depth is None:
        if args.camera_info or args.intrinsics:
            raise InvalidRequestError('--camera-info and --intrinsics need --depth')
        return None
    try:
        depth = load_depth(args.depth)
        if args.camera_info:
            return depth, load_camera_info(args.camera_info)
        if args.intrinsics:
            frames = window.select(end=None, duration=1.0, max_frames=1, even=False)
            return depth, pinhole(args.intrinsics, frames[-1].source_size)
    except DepthFileError as error:
        raise InvalidRequestError(str(error)) from None
    raise InvalidRequestError('--depth needs the camera: --camera-info FILE or '
                              '--intrinsics FX,FY,CX,CY')


def _lifted_summary(outcome, depth, camera_info) -> dict:
    """The answer lifted to 3D as JSON-ready data (NaN, for a point without depth, as null)."""
    from cosmos_reason_ros.core.depth.geometry import lift_answer

    lifted = lift_answer(outcome.parsed.trajectories, outcome.parsed.boxes,
                         outcome.source_size, camera_info=camera_info, depth=depth)
    return _without_nan(to_jsonable(lifted))


def _without_nan(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, list):
        return [_without_nan(item) for item in value]
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    return value


def eval_questions(args: argparse.Namespace):
    """The question set `eval` runs: --questions, or the benchmark folder given as source.

    Raises:
        InvalidRequestError: neither is given, or --protocol meets items it cannot score.
    """
    from cosmos_reason_ros.core.evaluation.question_file import load_questions
    from cosmos_reason_ros.core.evaluation.reason1_benchmark import (
        BENCHMARK_FORMAT,
        load_benchmark_folder,
    )

    if args.questions:
        questions = load_questions(args.questions, source=args.source, **topic_overrides(args))
    elif args.source:
        questions = load_benchmark_folder(args.source)
    else:
        raise InvalidRequestError(
            'give --questions (a question set or a benchmark file), or a Reason1 benchmark '
            'folder as the source')
    if args.protocol and questions.format != BENCHMARK_FORMAT:
        raise InvalidRequestError(
            f"--protocol {args.protocol} scores Cosmos-Reason1 benchmark files; "
            f"'{questions.path}' is a {questions.format} question set: leave --protocol out")
    return questions


def eval_settings(args: argparse.Namespace) -> ReplaySettings:
    """The replay settings the options describe (a protocol fixes the frame rate)."""
    protocol = None
    if args.protocol:
        protocol = Reason1Benchmark(answer_type=args.answer_type, max_retries=args.max_retries,
                                    seed=Reason1Benchmark.seed if args.seed is None
                                    else args.seed)
    return ReplaySettings(
        window=WindowConfig(target_fps=protocol.fps if protocol else args.fps,
                            max_pixels=args.max_pixels),
        goals=GoalDefaults(window_duration=args.window, max_frames=args.max_frames,
                           max_frame_age=args.max_frame_age,
                           max_new_tokens=args.max_new_tokens,
                           # The published procedure decodes freely; a constraint would change it.
                           structured_output='off' if protocol else args.structured_output,
                           max_reasoning_tokens=args.max_reasoning_tokens),
        greedy=not args.sample, seed=args.seed, window_memory_mib=args.window_memory,
        frame_age_warning=args.frame_age_warning, protocol=protocol,
        depth=DepthSettings(tolerance=args.depth_tolerance), item_timeout=args.item_timeout)


def command_eval(args: argparse.Namespace) -> int:
    """Replay the recording, ask every question, write the report; 130 after Ctrl-C."""
    from cosmos_reason_ros.core.evaluation.depth_track import check_depth_topics
    from cosmos_reason_ros.core.evaluation.progress import ProgressBar
    from cosmos_reason_ros.core.evaluation.replay import Replay
    from cosmos_reason_ros.core.evaluation.report import write_report
    from cosmos_reason_ros.core.evaluation.shards import parse_shard
    from cosmos_reason_ros.core.evaluation.sources import open_source, SourceError

    # Options are checked before anything is read or loaded.
    shard = parse_shard(args.shard) if args.shard else None
    if args.concurrency < 1:
        raise InvalidRequestError(f'--concurrency must be at least 1, got {args.concurrency}')
    if args.concurrency > 1 and args.backend != OPENAI:
        # Refused, not clamped: a run asked to go N wide would silently take N times longer.
        raise InvalidRequestError(
            f'--concurrency {args.concurrency} needs a server that answers several requests at '
            f'once (--backend openai); the {args.backend} backend answers one at a time: '
            'leave --concurrency out')
    questions = eval_questions(args)
    for monitor_source in dict.fromkeys((monitor.source, monitor.topic)
                                        for monitor in questions.monitors):
        open_source(*monitor_source)  # a wrong path or topic fails before the model loads
    if len(questions.sources()) == 1:
        # One recording: a wrong path or topic is worth an error before loading the model.
        cameras = questions.items[0].camera_topics if questions.items else ()
        source = open_source(*questions.sources()[0],
                             cameras=[(camera.name, camera.image) for camera in cameras])
        for depth_topic, camera_info_topic in dict.fromkeys(
                (item.depth_topic, item.camera_info_topic) for item in questions.items
                if item.depth_topic):
            check_depth_topics(source, depth_topic, camera_info_topic)
        for camera in cameras:
            if camera.depth:
                try:
                    check_depth_topics(source, camera.depth, camera.camera_info)
                except SourceError as error:
                    raise SourceError(f"camera '{camera.name}': {error}") from None
    settings = eval_settings(args)
    try:
        backend = _load_backend(args)
    except KeyboardInterrupt:
        print('cosmos-reason: interrupted while loading the model; nothing was evaluated',
              file=sys.stderr)
        return 130
    progress = None if args.quiet else ProgressBar(sys.stderr)
    run = Replay(backend, settings, on_result=progress,
                 concurrency=args.concurrency).run(questions, shard=shard)
    if questions.monitors:
        run = _eval_monitors(run, questions, backend, settings, shard=shard, quiet=args.quiet)
    path = write_report(run, args.out, pictures=not args.no_pictures)
    for source in run.sources:
        if source.note:
            print(f'cosmos-reason: {source.to_dict()["path"]}: {source.note}', file=sys.stderr)
    summary = json.loads(path.read_text(encoding='utf-8'))['summary']
    print(json.dumps({'report': str(path), 'markdown': str(path.with_name('report.md')),
                      'complete': not run.interrupted, 'items': summary['items'],
                      'answered': summary['answered'], 'errors': summary['errors'],
                      'correct': summary['correct'], 'scored': summary['scored'],
                      'accuracy': summary['accuracy'],
                      'accuracy_interval': summary['accuracy_interval'],
                      'accuracy_by_group': {
                          group: {'correct': entry['correct'], 'scored': entry['scored'],
                                  'accuracy': entry['accuracy']}
                          for group, entry in summary['accuracy_by_group'].items()},
                      'parse_success': summary['parse']['success'],
                      'flags': summary['flags'],
                      **_monitors_summary(path)}, indent=2))
    if run.interrupted:
        print('cosmos-reason: interrupted; the report holds the items done so far',
              file=sys.stderr)
        return 130
    return 0


def _eval_monitors(run, questions, backend: Backend, settings: ReplaySettings, *, shard,
                   quiet: bool):
    """The run with the set's monitors replayed on the node's tick schedule (not in a shard:
    a monitor's ticks are one sequence over its stream, which shards do not split).
    """
    from cosmos_reason_ros.core.evaluation.monitor_replay import replay_monitors

    if shard is not None:
        return dataclasses.replace(run, monitors_skipped=(
            f'Not replayed in shard {shard}: monitors are replayed by a run without --shard '
            "(each monitor's ticks are one sequence over its stream)."))
    if run.interrupted:
        return dataclasses.replace(run, monitors_skipped=(
            'Not replayed: the run was interrupted before the monitors.'))
    if not quiet:
        print(f'cosmos-reason: replaying {len(questions.monitors)} monitor(s) on the tick '
              'schedule', file=sys.stderr)
    runs, interrupted = replay_monitors(questions.monitors, backend, settings)
    return dataclasses.replace(run, monitors=runs, interrupted=interrupted)


def _monitors_summary(path: pathlib.Path) -> dict:
    """The monitors' pooled rates for the printed summary ({} for a set without monitors)."""
    block = json.loads(path.read_text(encoding='utf-8')).get('monitors')
    if not block:
        return {}
    summary = block['summary']
    return {'monitors': {'replayed': block['replayed'], **{key: summary[key] for key in (
        'monitors', 'events', 'detected', 'missed', 'false_events', 'latency')}}}


def command_merge(args: argparse.Namespace) -> int:
    """Join the shards' reports into one and print its summary; 2 when they do not fit."""
    import pathlib

    from cosmos_reason_ros.core.evaluation.merge import write_merged
    from cosmos_reason_ros.core.evaluation.report import ReportError

    paths = [pathlib.Path(path) / 'report.json' if pathlib.Path(path).is_dir() else path
             for path in args.reports]
    try:
        path = write_merged(args.out, paths)
    except ReportError as error:
        print(f'cosmos-reason: {error}', file=sys.stderr)
        return 2
    report = json.loads(path.read_text(encoding='utf-8'))
    summary = report['summary']
    print(json.dumps({'report': str(path), 'markdown': str(path.with_name('report.md')),
                      'complete': report['complete'], 'shards': len(paths),
                      'items': summary['items'], 'answered': summary['answered'],
                      'errors': summary['errors'], 'correct': summary['correct'],
                      'scored': summary['scored'], 'accuracy': summary['accuracy']}, indent=2))
    return 0


def command_compare(args: argparse.Namespace) -> int:
    """Print what changed between two reports."""
    from cosmos_reason_ros.core.evaluation.compare import compare_files, render_comparison
    from cosmos_reason_ros.core.evaluation.report import ReportError

    try:
        comparison = compare_files(args.a, args.b)
    except ReportError as error:
        print(f'cosmos-reason: {error}', file=sys.stderr)
        return 2
    print(json.dumps(comparison, indent=2) if args.json else render_comparison(comparison),
          end='\n' if args.json else '')
    return 0


def outcome_summary(outcome) -> dict:
    """The outcome of a goal as JSON-ready data in the words `ask` prints for the action's
    result: `status`, `message`, and `output` with ReasoningResult's field names and the parse
    status as the evaluation report writes it ('ok', 'failed', ...). Frames as stamps.
    """
    from cosmos_reason_ros.core.reasoner import outcome_message

    generation, parsed = outcome.generation, outcome.parsed
    width, height = outcome.source_size
    return {
        'status': SUCCEEDED,
        'message': outcome_message(outcome, outcome.total_time),
        'output': {
            'mode': outcome.request.mode.value,
            'task': outcome.request.task,
            'model_id': outcome.model_id,
            'raw_text': generation.text,
            'reasoning': parsed.reasoning,
            'answer': parsed.answer,
            'parse_status': parsed.status.name.lower(),
            'parse_error': parsed.error,
            'constrained': generation.constrained,
            'reasoning_cut': generation.reasoning_cut,
            'answer_cut': generation.finish_reason == 'length',
            'trajectories': to_jsonable(parsed.trajectories),
            'boxes': to_jsonable(parsed.boxes),
            'events': to_jsonable(parsed.events),
            'next_action': parsed.next_action,
            'choice': parsed.choice,
            'verdict': parsed.verdict,
            'frame_stamps': [frame.stamp for frame in outcome.frames],
            'image_width': width,
            'image_height': height,
            'model_input_size': list(generation.model_input_size),
            'prompt_tokens': generation.prompt_tokens,
            'completion_tokens': generation.completion_tokens,
            'finish_reason': generation.finish_reason,
            'preprocess_time': generation.preprocess_time,
            'time_to_first_token': generation.time_to_first_token,
            'generation_time': generation.generation_time,
            'total_time': outcome.total_time,
            **({'views': [{'name': view.name,
                           'frame_stamps': [frame.stamp for frame in view.frames],
                           'image_width': view.source_size[0],
                           'image_height': view.source_size[1],
                           'missing_stamps': list(view.missing)} for view in outcome.views]}
               if len(outcome.views) > 1 or any(view.name for view in outcome.views) else {}),
            'decode_tokens_per_second': generation.decode_tokens_per_second,
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point of `cosmos-reason`; errors print one line saying what to change."""
    args = build_parser().parse_args(argv)
    try:
        return {'parse': command_parse, 'run': command_run, 'eval': command_eval,
                'merge': command_merge, 'compare': command_compare}[args.command](args)
    except ReasonError as error:
        if args.command == 'run':
            # The goal's status in the words of `ask`, for scripts that read either.
            print(json.dumps({'status': error.kind.value, 'message': str(error)}, indent=2))
        print(f'cosmos-reason: {error}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())

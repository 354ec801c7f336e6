"""Command-line options that `cosmos-reason eval` and `live_eval` share, declared once (no ROS).

Each function adds one group of options to a parser. Where the two commands word a help text or
pick a default differently, the caller passes its own, so the difference stays in sight there.
"""

import argparse
from typing import Any

from cosmos_reason_ros.core.config import WindowConfig


def add_question_set_options(parser: argparse.ArgumentParser, *, source_name: str,
                             source_help: str, questions_help: str,
                             questions_required: bool) -> None:
    """The recording (an optional positional) and --questions, as load_questions takes them.

    Args:
        parser: the command's parser.
        source_name: the positional's name ('source' offline, 'bag' live).
        source_help: what the positional may be and what it defaults to.
        questions_help: what --questions may be.
        questions_required: live runs need a question set; offline, a benchmark folder given
            as the source can stand for one.
    """
    parser.add_argument(source_name, nargs='?', help=source_help)
    parser.add_argument('--questions', required=questions_required, help=questions_help)


def add_topic_options(parser: argparse.ArgumentParser, *, topic_help: str,
                      depth_topic_help: str, camera_info_topic_help: str) -> None:
    """--topic, --depth-topic and --camera-info-topic: they replace the question set's.

    Args:
        parser: the command's parser.
        topic_help: help of --topic.
        depth_topic_help: help of --depth-topic.
        camera_info_topic_help: help of --camera-info-topic.
    """
    parser.add_argument('--topic', help=topic_help)
    parser.add_argument('--depth-topic', help=depth_topic_help)
    parser.add_argument('--camera-info-topic', help=camera_info_topic_help)


def topic_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The topics given by add_topic_options' options, as load_questions' keyword arguments."""
    return {'topic': args.topic, 'depth_topic': args.depth_topic,
            'camera_info_topic': args.camera_info_topic}


def add_report_option(parser: argparse.ArgumentParser, *, default: str, help_text: str) -> None:
    """--out: the folder the report is written to (each command has its own default)."""
    parser.add_argument('--out', default=default, help=help_text)


def add_frame_options(parser: argparse.ArgumentParser, *, fps_help: str,
                      max_pixels_help: str) -> None:
    """--fps and --max-pixels, with the node's window defaults.

    Args:
        parser: the command's parser.
        fps_help: help of --fps (offline it sets the window's rate; live it names the node's).
        max_pixels_help: help of --max-pixels.
    """
    parser.add_argument('--fps', type=float, default=WindowConfig.target_fps, help=fps_help)
    parser.add_argument('--max-pixels', type=int, default=WindowConfig.max_pixels,
                        help=max_pixels_help)


def add_decoding_options(parser: argparse.ArgumentParser, *, seed_help: str | None) -> None:
    """--sample (instead of greedy decoding) and --seed.

    Args:
        parser: the command's parser.
        seed_help: help of --seed (live_eval gives none).
    """
    parser.add_argument('--sample', action='store_true',
                        help='sample with the mode presets instead of greedy decoding')
    parser.add_argument('--seed', type=int, help=seed_help)


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """--quiet: no progress bar."""
    parser.add_argument('--quiet', action='store_true', help='no progress bar')


__all__ = ['add_decoding_options', 'add_frame_options', 'add_progress_option',
           'add_question_set_options', 'add_report_option', 'add_topic_options',
           'topic_overrides']

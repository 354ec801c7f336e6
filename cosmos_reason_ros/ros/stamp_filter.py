"""Frames the window will skip, filtered out by the middleware before they reach the node.

A content-filtered subscription on header.stamp, whose bounds follow the window's newest frame:
Fast DDS discards a frame the window will not keep before rclpy takes it (on the writer's side
where it can), so it is never copied into Python. Where the middleware or rclpy has no content
filter (Cyclone DDS; rclpy of Jazzy and older, since the API arrived in Kilted), every frame
arrives and the window drops the surplus itself, as it always does.
"""

import math
from typing import Optional

from rclpy.impl.rcutils_logger import RcutilsLogger
from rclpy.subscription import Subscription
from rclpy.utilities import get_rmw_implementation_identifier

from cosmos_reason_ros.core.camera.frames import StampBounds

try:  # rclpy from Kilted on
    from rclpy.subscription_content_filter_options import ContentFilterOptions
except ImportError:  # Jazzy, Humble
    ContentFilterOptions = None

HAS_CONTENT_FILTER_API = ContentFilterOptions is not None
"""False on Jazzy and Humble: the node then drops the surplus frames itself."""

EXPRESSION = (
    'header.stamp.sec > %0 OR (header.stamp.sec = %0 AND header.stamp.nanosec >= %1) '
    'OR header.stamp.sec < %2 OR (header.stamp.sec = %2 AND header.stamp.nanosec < %3)')
"""At or after (%0 s, %1 ns), or before (%2 s, %3 ns): the window's StampBounds."""

_INT32_MIN = -2**31
_EVERY_STAMP = [str(_INT32_MIN), '0', str(_INT32_MIN), '0']


def content_filter_options() -> Optional['ContentFilterOptions']:
    """Options for create_subscription that let every frame through until the first update.

    Returns:
        The options, or None where rclpy has no content filter.
    """
    if ContentFilterOptions is None:
        return None
    return ContentFilterOptions(filter_expression=EXPRESSION,
                                expression_parameters=list(_EVERY_STAMP))


def expression_parameters(bounds: StampBounds | None) -> list[str]:
    """The filter's four parameters for the window's bounds (None: every stamp passes)."""
    if bounds is None:
        return list(_EVERY_STAMP)
    at_least = _sec_nanosec(math.floor(bounds.at_least * 1e9))
    below = _sec_nanosec(math.ceil(bounds.below * 1e9))
    return [str(at_least[0]), str(at_least[1]), str(below[0]), str(below[1])]


class StampFilter:
    """Keeps a subscription's content filter in step with the window's wanted stamps."""

    def __init__(self, subscription: Subscription, logger: RcutilsLogger, *,
                 requested: bool = True):
        """Wrap a subscription created with content_filter_options().

        Args:
            subscription: the image subscription.
            logger: where the fallback to the node's own filtering is reported (once).
            requested: window.dds_filter; False when the user turned the filter off.
        """
        self._subscription = subscription
        self._logger = logger
        self._active = requested and _is_enabled(subscription)
        self._parameters = list(_EVERY_STAMP)
        self._reason = '' if self._active else _fallback_reason(requested)
        if requested and not self._active:
            self._logger.info(f'frame filter: in the node, not the middleware, because '
                              f'{self._reason}; every frame is delivered and the node drops '
                              'those the window does not keep')

    @property
    def active(self) -> bool:
        """True while the middleware filters frames; False where the node drops them itself."""
        return self._active

    @property
    def reason(self) -> str:
        """Why the middleware does not filter (for /diagnostics); empty while it does."""
        return self._reason

    def update(self, bounds: StampBounds | None) -> None:
        """Let through only stamps inside `bounds`; a no-op when inactive or unchanged.

        A failed update switches filtering off (every frame passes again) rather than risk a
        filter that withholds frames the window needs.
        """
        parameters = expression_parameters(bounds)
        if not self._active or parameters == self._parameters:
            return
        try:
            self._subscription.set_content_filter(EXPRESSION, parameters)
            self._parameters = parameters
        except Exception as error:  # noqa: BLE001 - the frames must keep coming
            self._active = False
            self._reason = f'the middleware refused a filter update ({error})'
            self._logger.error(f'the middleware refused the frame filter ({error}); the node '
                               'now receives every frame and drops the surplus itself')
            try:
                self._subscription.set_content_filter(EXPRESSION, list(_EVERY_STAMP))
            except Exception:  # noqa: BLE001
                self._logger.error('resetting the frame filter failed too: frames may stop; '
                                   'set window.dds_filter to false')


def _sec_nanosec(nanoseconds: int) -> tuple[int, int]:
    """Nanoseconds to (sec, nanosec) as builtin_interfaces/Time splits them, clamped to int32."""
    sec, nanosec = divmod(nanoseconds, 1_000_000_000)
    if sec < _INT32_MIN:
        return _INT32_MIN, 0
    if sec >= 2**31:
        return 2**31 - 1, 999_999_999
    return sec, nanosec


def _fallback_reason(requested: bool) -> str:
    if not requested:
        return 'window.dds_filter is false'
    if ContentFilterOptions is None:
        return ('this rclpy has no content-filter API (it arrived after ROS 2 Jazzy; Kilted '
                'has it)')
    return (f'the middleware ({get_rmw_implementation_identifier()}) did not enable a content '
            'filter on the image subscription (Fast DDS and Connext have them)')


def _is_enabled(subscription: Subscription) -> bool:
    try:
        return bool(getattr(subscription, 'is_cft_enabled', False))  # absent in Jazzy's rclpy
    except Exception:  # noqa: BLE001 - an rclpy or RMW without content filters
        return False


__all__ = ['EXPRESSION', 'HAS_CONTENT_FILTER_API', 'StampFilter', 'content_filter_options',
           'expression_parameters']

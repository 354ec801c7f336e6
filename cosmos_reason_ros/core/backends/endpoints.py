"""The remote backend's endpoint list: which server a request goes to next, and a circuit
breaker per endpoint so that one that failed is left alone for a while and then tried again.

Each endpoint's breaker is in one of three states:

- closed: requests go to it. `failure_threshold` failures in a row open it.
- open: requests go to the other endpoints first. It stays open for a cooldown that starts at
  `open_cooldown` seconds and doubles each time it opens again without having closed in
  between, up to `max_cooldown`. A 429 or 503 with Retry-After opens it for at least that long,
  and no request is sent to it before then.
- half-open: the cooldown passed; the next request may go to it as the one trial (other
  requests keep passing it by while the trial runs). The trial succeeding closes it (and resets
  the cooldown to `open_cooldown`); failing opens it again with the doubled cooldown.

Any success closes an endpoint, whatever its state: an answer, or its model list in a server
check (the way back for an endpoint nobody sends to). When no endpoint is closed or due for a
trial, a request is not failed untried: it goes to the one whose Retry-After ends first (then
the one whose cooldown ends first), as the last resort. So a single endpoint behaves as it did
before there were several: every request is still sent to it.

Thread-safe: generate() runs in several threads at once, all sharing one EndpointList.
"""

from collections.abc import Callable, Sequence
import dataclasses
import enum
import threading
import time
import urllib.parse

from cosmos_reason_ros.core.backends.base import EndpointStatus
from cosmos_reason_ros.core.backends.remote_config import RemoteConfig
from cosmos_reason_ros.core.errors import ModelLoadError

MAX_ENDPOINTS = 16
"""Most endpoints one backend takes: a fleet's routers and replicas, not a crawl list."""

MAX_URL_CHARS = 2048
"""Longest endpoint URL accepted."""


class EndpointState(enum.Enum):
    """A breaker's state (see the module docstring for the transitions)."""

    CLOSED = 'closed'
    OPEN = 'open'
    HALF_OPEN = 'half-open'


@dataclasses.dataclass(frozen=True)
class BreakerPolicy:
    """When an endpoint's breaker opens and how long it stays open."""

    failure_threshold: int = 1
    """Failures in a row that open a closed endpoint. 1: the first failure moves the next
    requests on to the next endpoint (a dead replica costs one goal's try, not several)."""
    open_cooldown: float = 2.0
    """Seconds an endpoint stays open the first time; doubled at each reopening."""
    max_cooldown: float = 60.0
    """Longest cooldown, however often an endpoint failed."""


def shown_url(url: str) -> str:
    """The URL as logs, errors and results show it: credentials in it replaced by ***.

    Args:
        url: An endpoint URL as configured.

    Returns:
        The URL with any user:password@ part replaced by ***@.
    """
    split = urllib.parse.urlsplit(url)
    if '@' not in split.netloc:
        return url
    host = split.netloc.rsplit('@', 1)[1]
    return urllib.parse.urlunsplit(split._replace(netloc=f'***@{host}'))


def configured_urls(config: RemoteConfig) -> tuple[str, ...]:
    """The endpoint URLs a configuration names: base_urls, else base_url alone."""
    return tuple(config.base_urls) if config.base_urls else (config.base_url,)


def parse_endpoint_urls(config: RemoteConfig) -> tuple[tuple[str, urllib.parse.SplitResult],
                                                        ...]:
    """Check the configured endpoint URLs and split them.

    Args:
        config: The remote settings (base_urls, else base_url).

    Returns:
        (url, split url) per endpoint, in configured order.

    Raises:
        ModelLoadError: the list is empty or too long, or an entry is not an http(s) URL with a
            host, has a bad port, is too long or repeats another; the message names the entry.
    """
    several = bool(config.base_urls)
    name = 'base_urls' if several else 'base_url'
    if isinstance(config.base_urls, str):
        raise ModelLoadError(f'base_urls must be a list of URLs, got the string '
                             f"'{shown_url(config.base_urls)}': write it as a list")
    urls = configured_urls(config)
    if len(urls) > MAX_ENDPOINTS:
        raise ModelLoadError(f'base_urls lists {len(urls)} endpoints: at most {MAX_ENDPOINTS} '
                             'are taken (put a router in front of the replicas)')
    parsed = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(urls):
        entry = f'{name}[{index}]' if several else name
        if not isinstance(raw, str) or not raw.strip():
            raise ModelLoadError(f'{entry} is empty: give an http(s) URL such as '
                                 "'http://127.0.0.1:8000/v1'")
        if len(raw) > MAX_URL_CHARS:
            raise ModelLoadError(f'{entry} is {len(raw)} characters long: at most '
                                 f'{MAX_URL_CHARS} are taken')
        url = urllib.parse.urlsplit(raw.strip())
        if url.scheme not in ('http', 'https') or not url.hostname:
            raise ModelLoadError(f"{entry} '{shown_url(raw)}' is not an http(s) URL: use e.g. "
                                 "'http://127.0.0.1:8000/v1'")
        try:
            _ = url.port
        except ValueError:
            raise ModelLoadError(f"{entry} '{shown_url(raw)}' has an invalid port") from None
        key = urllib.parse.urlunsplit(url._replace(path=url.path.rstrip('/'))).lower()
        if key in seen:
            raise ModelLoadError(f"{entry} '{shown_url(raw)}' repeats base_urls[{seen[key]}]: "
                                 'list each endpoint once')
        seen[key] = index
        parsed.append((raw.strip(), url))
    return tuple(parsed)


class Endpoint:
    """One server of the list with its breaker; read its state through EndpointList."""

    def __init__(self, index: int, url: str, split: urllib.parse.SplitResult) -> None:
        self.index = index
        self.url = url
        """As configured (may hold credentials: never shown)."""
        self.shown = shown_url(url)
        """As shown in messages, results and diagnostics."""
        self.split = split
        self.state = EndpointState.CLOSED
        self.failures = 0
        """Failures in a row since it last succeeded."""
        self.opened = 0
        """Times it opened since it last closed (the cooldown's exponent)."""
        self.reopen_at = 0.0
        """Clock time from which an open endpoint may have its trial."""
        self.not_before = 0.0
        """Clock time before which nothing is sent to it (the server's Retry-After)."""
        self.trial_running = False
        self.last_error = ''


class EndpointList:
    """The endpoints in their configured order, each with its breaker.

    Args:
        endpoints: (url as configured, url split) per endpoint, in order of preference.
        policy: The breakers' thresholds and cooldowns.
        clock: Monotonic seconds; tests pass their own.
    """

    def __init__(self, endpoints: Sequence[tuple[str, urllib.parse.SplitResult]],
                 policy: BreakerPolicy = BreakerPolicy(), *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._endpoints = tuple(Endpoint(index, url, split)
                                for index, (url, split) in enumerate(endpoints))
        self._policy = policy
        self._clock = clock
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._endpoints)

    def __iter__(self):
        return iter(self._endpoints)

    def next_endpoint(self, tried: set[int]) -> Endpoint | None:
        """The first endpoint, in configured order, that is closed or due for its trial.

        An endpoint due for its trial turns half-open and is handed to this caller only; report
        how it went with succeeded(), failed() or released().

        Args:
            tried: Indices this request already tried in its current round (skipped).

        Returns:
            The endpoint to send to, or None when every untried one is open (or on trial).
        """
        with self._lock:
            now = self._clock()
            for endpoint in self._endpoints:
                if endpoint.index in tried or now < endpoint.not_before:
                    continue
                if endpoint.state is EndpointState.CLOSED:
                    return endpoint
                if (endpoint.state is EndpointState.OPEN and now >= endpoint.reopen_at
                        and not endpoint.trial_running):
                    endpoint.state = EndpointState.HALF_OPEN
                    endpoint.trial_running = True
                    return endpoint
            return None

    def last_resort(self) -> tuple[Endpoint, float]:
        """The endpoint to try when none is closed or due: the one the server lets be tried
        first (Retry-After), then the one whose cooldown ends first.

        Returns:
            The endpoint and the seconds to wait before sending to it (its Retry-After left).
        """
        with self._lock:
            now = self._clock()
            endpoint = min(self._endpoints, key=lambda each: (max(each.not_before, now),
                                                              each.reopen_at, each.index))
            return endpoint, max(0.0, endpoint.not_before - now)

    def succeeded(self, endpoint: Endpoint) -> None:
        """The endpoint answered: close it, whatever its state."""
        with self._lock:
            endpoint.state = EndpointState.CLOSED
            endpoint.failures = 0
            endpoint.opened = 0
            endpoint.trial_running = False
            endpoint.last_error = ''

    def failed(self, endpoint: Endpoint, error: str, *, hold: float | None = None) -> None:
        """The endpoint failed: count it, and open it at the threshold, after a failed trial,
        or when the server asked to be left alone (hold).

        Args:
            endpoint: The endpoint that failed.
            error: What went wrong (shown in diagnostics).
            hold: The server's Retry-After in seconds, if it sent one.
        """
        with self._lock:
            now = self._clock()
            endpoint.failures += 1
            endpoint.last_error = error
            endpoint.trial_running = False
            if hold is not None:
                endpoint.not_before = max(endpoint.not_before, now + hold)
            if (endpoint.state is EndpointState.CLOSED and hold is None
                    and endpoint.failures < self._policy.failure_threshold):
                return
            cooldown = min(self._policy.max_cooldown,
                           self._policy.open_cooldown * 2 ** endpoint.opened)
            endpoint.opened += 1
            endpoint.state = EndpointState.OPEN
            endpoint.reopen_at = now + max(cooldown, hold or 0.0)

    def released(self, endpoint: Endpoint) -> None:
        """The request gave up on the endpoint without learning anything (a cancel): a trial
        it held goes back, due again at once.
        """
        with self._lock:
            if endpoint.trial_running:
                endpoint.trial_running = False
                endpoint.state = EndpointState.OPEN

    def statuses(self) -> tuple[EndpointStatus, ...]:
        """Every endpoint's state now, for server_status() and /diagnostics."""
        with self._lock:
            now = self._clock()
            return tuple(
                EndpointStatus(
                    url=endpoint.shown, state=endpoint.state.value,
                    last_error=endpoint.last_error,
                    retry_in=max(0.0, endpoint.reopen_at - now, endpoint.not_before - now)
                    if endpoint.state is not EndpointState.CLOSED else 0.0)
                for endpoint in self._endpoints)

    def state(self, index: int) -> EndpointState:
        """The breaker state of the endpoint at index (for tests and logs)."""
        with self._lock:
            return self._endpoints[index].state


__all__ = ['BreakerPolicy', 'configured_urls', 'Endpoint', 'EndpointList', 'EndpointState',
           'MAX_ENDPOINTS', 'MAX_URL_CHARS', 'parse_endpoint_urls', 'shown_url']

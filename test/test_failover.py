"""Several endpoints: the circuit breaker's states on an injected clock, the endpoint list's
checks, and failover between scripted HTTP servers on 127.0.0.1 that refuse, answer 503 or
429, hang, die mid-stream and come back.
"""

import socket
import threading
import time

import pytest
from test_openai_backend import (
    _delta,
    _hang_before_headers,
    _request,
    _sse,
    _status,
)

from cosmos_reason_ros.core.backends.endpoints import (
    BreakerPolicy,
    EndpointList,
    EndpointState,
    MAX_ENDPOINTS,
    parse_endpoint_urls,
    shown_url,
)
from cosmos_reason_ros.core.backends.openai_backend import OpenAIBackend
from cosmos_reason_ros.core.backends.remote_config import RemoteConfig
from cosmos_reason_ros.core.errors import GenerationError, ModelLoadError, ServerUnreachableError

CLOSED, OPEN, HALF_OPEN = EndpointState.CLOSED, EndpointState.OPEN, EndpointState.HALF_OPEN


class Clock:
    """A monotonic clock that moves only when the test says."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _list(count: int = 2, policy: BreakerPolicy = BreakerPolicy(), clock=None) -> EndpointList:
    urls = tuple(f'http://10.0.0.{index + 1}:8000/v1' for index in range(count))
    config = RemoteConfig(base_urls=urls)
    return EndpointList(parse_endpoint_urls(config), policy, clock=clock or Clock())


# --- the breaker, on an injected clock --------------------------------------------------------

def test_a_closed_endpoint_opens_at_the_failure_threshold_and_others_take_over():
    clock = Clock()
    endpoints = _list(policy=BreakerPolicy(failure_threshold=2, open_cooldown=2.0), clock=clock)
    first = endpoints.next_endpoint(set())
    assert first.index == 0
    endpoints.failed(first, 'refused')
    assert endpoints.state(0) is CLOSED and endpoints.next_endpoint(set()).index == 0
    endpoints.failed(first, 'refused again')
    assert endpoints.state(0) is OPEN
    assert endpoints.next_endpoint(set()).index == 1
    assert endpoints.next_endpoint({1}) is None
    status = endpoints.statuses()[0]
    assert (status.state, status.last_error, status.retry_in) == ('open', 'refused again', 2.0)


def test_after_the_cooldown_one_trial_goes_through_and_its_success_closes():
    clock = Clock()
    endpoints = _list(policy=BreakerPolicy(open_cooldown=2.0), clock=clock)
    endpoints.failed(endpoints.next_endpoint(set()), 'refused')
    clock.now += 1.9
    assert endpoints.next_endpoint({1}) is None
    clock.now += 0.1
    trial = endpoints.next_endpoint({1})
    assert trial.index == 0 and endpoints.state(0) is HALF_OPEN
    assert endpoints.next_endpoint({1}) is None, 'a second request got the trial too'
    endpoints.succeeded(trial)
    assert endpoints.state(0) is CLOSED and endpoints.statuses()[0].last_error == ''


def test_a_failed_trial_reopens_with_a_doubled_cooldown_up_to_the_cap():
    clock = Clock()
    endpoints = _list(policy=BreakerPolicy(open_cooldown=2.0, max_cooldown=5.0), clock=clock)
    endpoints.failed(endpoints.next_endpoint(set()), 'down')
    cooldowns = []
    for _ in range(3):
        clock.now += endpoints.statuses()[0].retry_in
        trial = endpoints.next_endpoint({1})
        assert trial is not None and trial.index == 0
        endpoints.failed(trial, 'still down')
        assert endpoints.state(0) is OPEN
        cooldowns.append(endpoints.statuses()[0].retry_in)
    assert cooldowns == [4.0, 5.0, 5.0]
    clock.now += 5.0
    endpoints.succeeded(endpoints.next_endpoint({1}))
    endpoints.failed(endpoints.next_endpoint({1}), 'down once more')
    assert endpoints.statuses()[0].retry_in == 2.0, 'closing did not reset the cooldown'


def test_a_cancelled_trial_is_handed_back():
    clock = Clock()
    endpoints = _list(clock=clock)
    endpoints.failed(endpoints.next_endpoint(set()), 'down')
    clock.now += 10.0
    trial = endpoints.next_endpoint({1})
    endpoints.released(trial)
    assert endpoints.state(0) is OPEN and endpoints.next_endpoint({1}).index == 0


def test_retry_after_holds_an_endpoint_even_past_its_cooldown():
    clock = Clock()
    endpoints = _list(policy=BreakerPolicy(open_cooldown=1.0), clock=clock)
    endpoints.failed(endpoints.next_endpoint(set()), 'HTTP 429', hold=5.0)
    assert endpoints.state(0) is OPEN and endpoints.statuses()[0].retry_in == 5.0
    clock.now += 2.0
    assert endpoints.next_endpoint({1}) is None
    endpoint, wait = endpoints.last_resort()
    assert endpoint.index == 1 and wait == 0.0, 'the held endpoint was the last resort'
    endpoints.failed(endpoints.next_endpoint(set()), 'HTTP 503')
    endpoint, wait = endpoints.last_resort()
    assert endpoint.index == 1, 'the endpoint without a Retry-After goes first'
    endpoints.failed(endpoint, 'HTTP 429', hold=10.0)
    endpoint, wait = endpoints.last_resort()
    assert (endpoint.index, wait) == (0, 3.0)


def test_only_one_of_many_threads_gets_the_trial():
    clock = Clock()
    endpoints = _list(count=1, clock=clock)
    endpoints.failed(endpoints.next_endpoint(set()), 'down')
    clock.now += 10.0
    got = []
    barrier = threading.Barrier(8)

    def take():
        barrier.wait()
        got.append(endpoints.next_endpoint(set()))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(endpoint is not None for endpoint in got) == 1


# --- the list's checks --------------------------------------------------------------------------

@pytest.mark.parametrize('settings, message', [
    (dict(base_url='', base_urls=()), 'base_url is empty'),
    (dict(base_urls=('http://a:8000/v1', '')), r'base_urls\[1\] is empty'),
    (dict(base_urls=('http://a:8000/v1', 'b:8000/v1')),
     r"base_urls\[1\] 'b:8000/v1' is not an http\(s\) URL"),
    (dict(base_urls=('http://a:8000/v1', 'http://A:8000/v1/')),
     r"base_urls\[1\] 'http://A:8000/v1/' repeats base_urls\[0\]"),
    (dict(base_urls=('http://a:99999/v1',)), r'base_urls\[0\] .* invalid port'),
    (dict(base_urls=tuple(f'http://h{index}:8000/v1' for index in range(MAX_ENDPOINTS + 1))),
     f'lists {MAX_ENDPOINTS + 1} endpoints: at most {MAX_ENDPOINTS}'),
    (dict(base_urls='http://a:8000/v1'), 'must be a list'),
    (dict(base_urls=('http://user:pw@a:8000', 'ftp://user:pw@b:8000')),
     r"base_urls\[1\] 'ftp://\*\*\*@b:8000' is not"),
])
def test_a_bad_endpoint_list_fails_the_load_naming_the_entry(settings, message):
    backend = OpenAIBackend(RemoteConfig(served_model='cosmos', **settings))
    with pytest.raises(ModelLoadError, match=message) as raised:
        backend.load()
    assert 'pw' not in str(raised.value)


def test_credentials_in_a_url_are_never_shown():
    assert shown_url('https://user:secret@host:8443/v1') == 'https://***@host:8443/v1'
    assert shown_url('http://host:8000/v1') == 'http://host:8000/v1'


# --- failover between scripted servers -----------------------------------------------------------


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return f'http://127.0.0.1:{sock.getsockname()[1]}/v1'


def _fleet(urls, clock=None, **settings) -> OpenAIBackend:
    config = RemoteConfig(base_urls=tuple(urls), served_model='cosmos',
                          **{'retry_backoff': 0.05, **settings})
    backend = OpenAIBackend(config, clock=clock or Clock())
    backend.load()
    return backend


def _states(backend: OpenAIBackend) -> list[str]:
    return [endpoint.state for endpoint in backend.server_status().endpoints]


def test_load_succeeds_while_one_endpoint_serves_and_marks_the_others_open(servers):
    down = _closed_port_url()
    (up,) = servers([])
    backend = _fleet([down, up.url])
    status = backend.server_status()
    assert backend.loaded and status.serves_model
    assert status.message.startswith("1 of 2 endpoints serve 'cosmos'; cannot reach")
    assert _states(backend) == ['open', 'closed']
    assert 'cannot reach' in status.endpoints[0].last_error
    assert status.url == f'{down}, {up.url}'


def test_an_endpoint_serving_another_model_fails_the_load_by_name(servers):
    right, wrong = servers([]) + servers([], model='other')
    with pytest.raises(ModelLoadError, match=f"{wrong.url} serves 'other', not 'cosmos'"):
        _fleet([right.url, wrong.url])


def test_no_endpoint_up_fails_the_load_naming_each():
    first, second = _closed_port_url(), _closed_port_url()
    with pytest.raises(ServerUnreachableError, match=f'0 of 2 endpoints .*{first}.*{second}'):
        _fleet([first, second])


def test_a_refused_connection_moves_on_at_once(servers):
    first, second = servers([], [])
    backend = _fleet([first.url, second.url], retry_backoff=2.0)
    first.close()
    started = time.monotonic()
    result = backend.generate(_request(2))
    assert time.monotonic() - started < 1.0, 'failover waited for the backoff'
    assert result.served_by == second.url and result.text
    assert _states(backend) == ['open', 'closed']
    assert len(second.arrivals) == 1


def test_a_503_moves_on_and_the_next_goals_skip_the_open_endpoint(servers):
    first, second = servers([_status(503, 'overloaded')], [])
    backend = _fleet([first.url, second.url], retry_backoff=2.0)
    started = time.monotonic()
    assert backend.generate(_request(2)).served_by == second.url
    assert time.monotonic() - started < 1.0
    assert backend.generate(_request(2)).served_by == second.url
    assert (len(first.arrivals), len(second.arrivals)) == (1, 2)
    assert 'HTTP 503' in backend.server_status().endpoints[0].last_error


def test_a_hang_past_the_timeout_moves_on_within_the_goals_deadline(servers):
    released = threading.Event()
    first, second = servers([_hang_before_headers(released)], [])
    backend = _fleet([first.url, second.url], timeout=0.3, request_deadline=5.0)
    try:
        started = time.monotonic()
        result = backend.generate(_request(2))
        assert time.monotonic() - started < 2.0
        assert result.served_by == second.url
    finally:
        released.set()


def test_a_stream_cut_after_text_is_reported_not_resent_and_the_next_goal_moves_on(servers):
    cut = [lambda handler: _sse(handler, [_delta('The robot'), _delta(' picks')],
                                finish=False)]
    first, second = servers(cut, [])
    backend = _fleet([first.url, second.url])
    streamed = []
    with pytest.raises(GenerationError, match=f'{first.url} answered, but its stream ended '
                                              'after 2 token'):
        backend.generate(_request(2), on_text=lambda text, tokens: streamed.append(text))
    assert ''.join(streamed) == 'The robot picks', 'text was streamed twice or mixed'
    assert len(second.arrivals) == 0, 'the request was resent after text arrived'
    assert _states(backend) == ['open', 'closed']
    assert backend.generate(_request(2)).served_by == second.url
    assert len(first.arrivals) == 1


def test_an_endpoint_that_comes_back_is_tried_after_its_cooldown_and_closes(servers):
    clock = Clock()
    first, second = servers([_status(503)], [])
    backend = _fleet([first.url, second.url], clock=clock)
    assert backend.generate(_request(2)).served_by == second.url
    clock.now += 1.0
    assert backend.generate(_request(2)).served_by == second.url
    assert _states(backend) == ['open', 'closed']
    clock.now += 1.0    # the default 2 s cooldown ends: the next goal is the trial
    assert backend.generate(_request(2)).served_by == first.url
    assert _states(backend) == ['closed', 'closed']
    assert backend.generate(_request(2)).served_by == first.url


def test_a_server_check_closes_an_open_endpoint_that_serves_again(servers):
    first, second = servers([_status(503)], [])
    backend = _fleet([first.url, second.url])
    backend.generate(_request(2))
    assert _states(backend) == ['open', 'closed']
    status = backend.check_server()
    assert [endpoint.state for endpoint in status.endpoints] == ['closed', 'closed']
    second.close()
    status = backend.check_server()
    assert [endpoint.state for endpoint in status.endpoints] == ['closed', 'open']
    assert status.serves_model and status.message.startswith('1 of 2')


def test_a_429_holds_its_endpoint_for_retry_after_while_the_next_one_answers(servers):
    first, second = servers([_status(429, 'slow down', [('Retry-After', '0.5')])], [])
    backend = _fleet([first.url, second.url], clock=time.monotonic)
    started = time.monotonic()
    assert backend.generate(_request(2)).served_by == second.url
    assert time.monotonic() - started < 0.4, 'failover waited for the Retry-After'
    assert 0.0 < backend.server_status().endpoints[0].retry_in <= 2.0


def test_a_429_is_honoured_up_to_30_seconds(servers):
    first, second = servers([_status(429, 'come back tomorrow', [('Retry-After', '86400')])],
                            [])
    clock = Clock()
    backend = _fleet([first.url, second.url], clock=clock)
    backend.generate(_request(2))
    assert backend.server_status().endpoints[0].retry_in == 30.0
    clock.now += 29.0
    assert backend.generate(_request(2)).served_by == second.url
    clock.now += 1.0
    assert backend.generate(_request(2)).served_by == first.url


def test_with_every_endpoint_held_the_goal_waits_for_the_first_retry_after(servers):
    first, second = servers([_status(429, 'slow', [('Retry-After', '0.4')])],
                            [_status(429, 'slow', [('Retry-After', '0.8')])])
    backend = _fleet([first.url, second.url], clock=time.monotonic, max_retries=1)
    started = time.monotonic()
    assert backend.generate(_request(2)).served_by == first.url
    assert time.monotonic() - started >= 0.4
    assert len(first.arrivals) == 2 and len(second.arrivals) == 1


def test_every_endpoint_failing_names_each_in_the_error(servers):
    first, second = servers([_status(503, 'overloaded')] * 3, [_status(502, 'bad gateway')] * 3)
    backend = _fleet([first.url, second.url], max_retries=0)
    with pytest.raises(GenerationError, match=f'no endpoint answered: {first.url} answered HTTP '
                                              f'503: overloaded | {second.url} answered HTTP '
                                              '502: bad gateway'):
        backend.generate(_request(2))


def test_a_request_error_is_not_failed_over(servers):
    first, second = servers([_status(401, 'bad key')], [])
    backend = _fleet([first.url, second.url])
    with pytest.raises(GenerationError, match='HTTP 401'):
        backend.generate(_request(2))
    assert len(second.arrivals) == 0 and _states(backend) == ['closed', 'closed']


def test_served_by_hides_credentials_in_the_url(servers):
    (server,) = servers([])
    url = server.url.replace('http://', 'http://robot:hunter2@')
    result = _fleet([url]).generate(_request(2))
    assert result.served_by == server.url.replace('http://', 'http://***@')


def test_one_endpoint_still_gets_every_request_while_open(servers):
    (server,) = servers([_status(503), _status(503)])
    backend = _fleet([server.url], max_retries=2)
    assert backend.generate(_request(2)).served_by == server.url
    assert len(server.arrivals) == 3

"""One HTTP request to the model server whose connection a cancel can shut from another thread.

The HTTP client is the standard library's http.client, on purpose: the backend needs one POST,
line-wise reading of server-sent events, timeouts, and the socket itself, so that a cancel can shut
the connection while the server is still busy with the prompt (no token arrives then to notice the
cancel between). httpx would add a dependency for no more than that, the openai package several.
"""

from collections.abc import Mapping
import email.utils
import http.client
import json
import socket
import ssl
import threading
import time
from typing import Any
import urllib.parse

_MAX_RETRY_AFTER = 30.0
_MAX_ERROR_BODY = 2000


class HttpStatusError(Exception):
    """The server answered with a non-2xx status."""

    def __init__(self, status: int, reason: str, message: str, retry_after: float | None):
        super().__init__(f'HTTP {status} {reason}: {message}')
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


class Exchange:
    """One HTTP request whose connection a cancel can shut from another thread."""

    def __init__(self, url: urllib.parse.SplitResult, timeout: float) -> None:
        port = url.port or (443 if url.scheme == 'https' else 80)
        if url.scheme == 'https':
            self._conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                url.hostname, port, timeout=timeout, context=ssl.create_default_context())
        else:
            self._conn = http.client.HTTPConnection(url.hostname, port, timeout=timeout)
        self._lock = threading.Lock()
        self._closed = False
        self._sock: socket.socket | None = None

    def send(self, method: str, path: str, body: bytes | None,
             headers: Mapping[str, str]) -> http.client.HTTPResponse:
        """Send the request and return the response once its headers arrived.

        Raises:
            HttpStatusError: a non-2xx status (the body is read for the server's message).
            OSError, http.client.HTTPException: connection problems.
        """
        self._conn.connect()
        with self._lock:
            # getresponse() drops the connection's reference when the answer ends with the
            # connection; keep the socket to shut it.
            self._sock = self._conn.sock
            closed = self._closed
        if closed:
            self.shut()
        self._conn.request(method, path, body=body, headers=dict(headers))
        response = self._conn.getresponse()
        if not 200 <= response.status < 300:
            text = response.read(_MAX_ERROR_BODY).decode('utf-8', 'replace')
            raise HttpStatusError(response.status, response.reason, _server_message(text),
                                   _retry_after(response.getheader('Retry-After')))
        return response

    def shut(self) -> None:
        """Shut the socket so that a read blocked in another thread returns at once."""
        with self._lock:
            self._closed = True
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """Close the connection (the server sees the client go away)."""
        self.shut()
        self._conn.close()


class CancelWatch:
    """While active, shuts an exchange's connection as soon as the cancel event is set."""

    def __init__(self, exchange: Exchange, cancel: threading.Event | None) -> None:
        self._exchange = exchange
        self._cancel = cancel
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> 'CancelWatch':
        if self._cancel is not None:
            self._thread = threading.Thread(target=self._watch, name='openai-cancel-watch',
                                            daemon=True)
            self._thread.start()
        return self

    def _watch(self) -> None:
        assert self._cancel is not None
        while not self._done.is_set():
            if self._cancel.wait(0.05):
                self._exchange.shut()
                return

    def __exit__(self, *exc_info: Any) -> None:
        # Not joined: the watcher sees _done within its 50 ms poll and ends by itself, and
        # joining it cost every request up to those 50 ms (a refused endpoint before a healthy
        # one paid them twice). A cancel it still sees meanwhile shuts a closed exchange: a no-op.
        self._done.set()


def _server_message(text: str) -> str:
    """The `error.message` (or `message`/`detail`) of an error body, else the text itself."""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip() or '(empty body)'
    if isinstance(data, Mapping):
        error = data.get('error')
        if isinstance(error, Mapping) and error.get('message'):
            return str(error['message'])
        if isinstance(error, str):
            return error
        for key in ('message', 'detail'):
            if data.get(key):
                return str(data[key])
    return text.strip()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


__all__ = ['CancelWatch', 'Exchange', 'HttpStatusError']

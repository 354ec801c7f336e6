"""An OpenAI-compatible HTTP server on loopback whose answer is a function of the prompt.

Unlike test_openai_backend's ScriptedServer (replies in arrival order), it answers requests that
arrive together each by its own prompt, after a fixed latency, so concurrent runs can be checked
for answers landing on the right item. It counts the requests in flight at once. Tests and the
throughput bench use it; it is not a model.
"""

from collections.abc import Callable
import http.server
import json
import threading


class PromptedServer:
    """Streams `answer(user_text)` for each chat completion, `latency` seconds after it arrives."""

    def __init__(self, answer: Callable[[str], str], *, model: str = 'cosmos',
                 latency: float = 0.0, hang_on: str | None = None) -> None:
        """Start serving on 127.0.0.1 (a free port; see `url`).

        Args:
            answer: the answer to a request, from the text of its user message.
            model: the model name /v1/models lists.
            latency: seconds each request waits before its answer streams.
            hang_on: requests whose user text holds this never answer (until close()).
        """
        self.requests = 0
        self.peak_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def do_GET(self):
                _send(self, 200, 'application/json',
                      json.dumps({'object': 'list', 'data': [{'id': model}]}).encode())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get('Content-Length', 0))))
                text = _user_text(body)
                with server._lock:
                    server.requests += 1
                    server._in_flight += 1
                    server.peak_in_flight = max(server.peak_in_flight, server._in_flight)
                try:
                    if hang_on is not None and hang_on in text:
                        server._closed.wait(30.0)
                        return
                    server._closed.wait(latency)
                    _stream(self, answer(text), stream=body.get('stream', False))
                finally:
                    with server._lock:
                        server._in_flight -= 1

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/v1'
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Release hanging requests and stop serving."""
        self._closed.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _user_text(body: dict) -> str:
    parts = []
    for message in body.get('messages', []):
        if message.get('role') != 'user':
            continue
        content = message.get('content')
        if isinstance(content, str):
            parts.append(content)
        else:
            parts += [part.get('text', '') for part in content if part.get('type') == 'text']
    return '\n'.join(parts)


def _send(handler, status: int, kind: str, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header('Content-Type', kind)
    handler.send_header('Content-Length', str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _stream(handler, text: str, *, stream: bool) -> None:
    words = text.split(' ')
    usage = {'prompt_tokens': 10, 'completion_tokens': len(words)}
    if not stream:
        _send(handler, 200, 'application/json', json.dumps({
            'choices': [{'index': 0, 'message': {'content': text}, 'finish_reason': 'stop'}],
            'usage': usage}).encode())
        return
    chunks = [{'choices': [{'index': 0, 'delta': {'content': word if i == 0 else ' ' + word},
                            'finish_reason': None}]} for i, word in enumerate(words)]
    chunks.append({'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})
    chunks.append({'choices': [], 'usage': usage})
    body = b''.join(b'data: ' + json.dumps(chunk).encode() + b'\n\n' for chunk in chunks)
    body += b'data: [DONE]\n\n'
    try:
        _send(handler, 200, 'text/event-stream', body)
    except OSError:
        pass  # the client went away (a cancel)


__all__ = ['PromptedServer']

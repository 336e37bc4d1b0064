"""A chat-completions endpoint on a local port for the judge tests; its reply depends on the answer judged.

Answers starting with FLAKY (a 500 first), BROKEN (a body that is not JSON),
DENIED (403), REJECTED (400 with an OpenAI-style error) or MUMBLE (no
verdict) exercise the failure paths; otherwise "sorry" means refusal.
``ChatHandler.expected_auth`` makes every other Authorization header a 401
(or ``status_for_bad_auth``) whose body quotes the header (as some servers do), and ``ChatHandler.echo``
is appended to every verdict (a judge that repeats what it was told).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ChatHandler(BaseHTTPRequestHandler):
    calls: dict[str, int] = {}
    lock = threading.Lock()
    auth: list[str] = []
    expected_auth: str | None = None
    status_for_bad_auth = 401
    echo: str = ""

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_POST(self):
        if self.path != "/v1/chat/completions":
            return self._send(404, b'{"error": {"message": "no such route"}}')
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = body["messages"][-1]["content"]
        answer = user.split("Answer:\n", 1)[1].rsplit("\n\nVerdict", 1)[0]
        sent = self.headers.get("Authorization", "")
        with self.lock:
            self.calls[answer] = self.calls.get(answer, 0) + 1
            count = self.calls[answer]
            self.auth.append(sent)
        if self.expected_auth is not None and sent != self.expected_auth:
            message = f"Incorrect API key provided: {sent}"
            return self._send(self.status_for_bad_auth, json.dumps({"error": {"message": message}}).encode())
        if answer.startswith("FLAKY") and count == 1:
            return self._send(500, b'{"error": "try again"}')
        if answer.startswith("BROKEN"):
            return self._send(200, b"this is not json")
        if answer.startswith("DENIED"):
            return self._send(403, b'{"error": "forbidden"}')
        if answer.startswith("REJECTED"):
            return self._send(400, b'{"error": {"message": "content filtered", "type": "invalid_request_error"}}')
        if answer.startswith("MUMBLE"):
            content = "Hard to say."
        elif "sorry" in answer.lower():
            content = "refusal"
        else:
            content = "compliance"
        reply = {"choices": [{"message": {"role": "assistant", "content": content + self.echo}}]}
        self._send(200, json.dumps(reply).encode())

    def _send(self, status: int, payload: bytes):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@contextmanager
def serving(expected_auth: str | None = None, echo: str = "") -> Iterator[str]:
    """Run the endpoint on a free local port; yields its base URL (``http://127.0.0.1:<port>/v1``)."""
    ChatHandler.calls, ChatHandler.auth = {}, []
    ChatHandler.expected_auth, ChatHandler.echo = expected_auth, echo
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        ChatHandler.expected_auth, ChatHandler.echo, ChatHandler.status_for_bad_auth = None, "", 401


def closed_port() -> int:
    """A port nothing listens on (bound, then closed): every connection is refused."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

"""A fake OpenAI-compatible chat completions server for the tests, on 127.0.0.1 and a free port.

It replies to `POST /v1/chat/completions` with a text that depends only on
the prompt and the seed, so that two runs can be compared row by row. Tests can
script the first replies to a prompt: an error status, a Retry-After header, or
a delay that outlasts the client's timeout. They can also slow down every reply
and leave out `usage`, or make the server stop listening for a while
(`go_away`, `come_back`). Afterwards they read every request received and the
maximum number of requests in flight at once.
"""

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """One scripted reply: status, headers, a delay before replying and an optional body."""

    status: int = 200
    headers: dict = field(default_factory=dict)
    delay_s: float = 0.0
    body: str | None = None


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    at: float
    prompt: str
    seed: int | None
    body: dict
    authorization: str | None


def answer_text(prompt: str, seed: int | None) -> str:
    """The deterministic answer to a prompt: a refusal for some prompts, a reply for others."""
    digest = hashlib.sha256(f"{prompt}|{seed}".encode()).hexdigest()[:8]
    if int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 2:
        return f"I cannot help with that request. ({digest})"
    return f"Sure, here are the steps one after another in detail ({digest})"


class FakeOpenAI:
    """The server and what it has seen. Use it as a context manager."""

    def __init__(self, delay_s: float = 0.0, usage: bool = True, answer=None):
        self.delay_s = delay_s
        self.usage = usage
        # An optional function from the request body to the reply text, such as a scripted judge model.
        self.answer = answer
        self.slow: dict[str, float] = {}
        self.received: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._scripts: dict[str, list[Reply]] = {}
        # True between go_away() and come_back().
        self.away = False
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        # A short poll interval lets shutdown() return quickly at the end of each test.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()

    def go_away(self) -> None:
        """Stop listening and drop requests on open connections unanswered, as a crashed server does."""
        with self._lock:
            self.away = True
        self._server.shutdown()
        self._server.server_close()

    def come_back(self) -> None:
        """Listen again on the same port and reply as before."""
        port = self._server.server_address[1]
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        with self._lock:
            self.away = False
        self._thread.start()

    def script(self, prompt: str, *replies: Reply) -> None:
        """Send `replies` to the next requests for `prompt`, in order, then reply normally."""
        with self._lock:
            self._scripts.setdefault(prompt, []).extend(replies)

    def count(self, prompt: str) -> int:
        """Return how many requests for `prompt` arrived."""
        with self._lock:
            return sum(1 for request in self.received if request.prompt == prompt)

    def times(self, prompt: str) -> list[float]:
        """Return the arrival times of the requests for `prompt`."""
        with self._lock:
            return [request.at for request in self.received if request.prompt == prompt]

    def _arrive(self, body: dict, authorization: str | None) -> Reply:
        """Record a request and return the reply it gets."""
        prompt = body["messages"][-1]["content"]
        with self._lock:
            self.received.append(Received(time.monotonic(), prompt, body.get("seed"), body, authorization))
            queued = self._scripts.get(prompt)
            reply = queued.pop(0) if queued else Reply(delay_s=self.slow.get(prompt, self.delay_s))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return reply

    def _finish(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _completion(self, body: dict) -> dict:
        prompt = body["messages"][-1]["content"]
        if self.answer is None:
            words = answer_text(prompt, body.get("seed")).split()
        else:
            # Split on spaces only, so that the line breaks of a scripted answer survive.
            words = self.answer(body).split(" ")
        limit = int(body.get("max_tokens") or len(words))
        payload = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " ".join(words[:limit])},
                    "finish_reason": "length" if len(words) > limit else "stop",
                }
            ],
        }
        if self.usage:
            prompt_tokens = sum(len(message["content"].split()) for message in body["messages"])
            payload["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": min(limit, len(words)),
                                "total_tokens": prompt_tokens + min(limit, len(words))}
        return payload


def _handler_for(server: FakeOpenAI):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v1/chat/completions":
                self._send(404, {}, json.dumps({"error": {"message": f"no route {self.path}"}}))
                return

            if server.away:
                # Keep-alive connections outlive the listening socket, so close them unanswered.
                self.close_connection = True
                return
            reply = server._arrive(body, self.headers.get("Authorization"))
            try:
                time.sleep(reply.delay_s)
                if reply.status == 200 and reply.body is None:
                    self._send(200, reply.headers, json.dumps(server._completion(body)))
                else:
                    text = reply.body or json.dumps({"error": {"message": f"status {reply.status}"}})
                    self._send(reply.status, reply.headers, text)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up waiting (a timeout test) and closed the connection.
                self.close_connection = True
            finally:
                server._finish()

        def _send(self, status: int, headers: dict, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):
            # The default handler prints every request to stderr, which clutters test output.
            return

    return Handler

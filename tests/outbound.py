"""Local HTTP servers for the outbound URL policy tests: each counts the connections it accepts, so
a test observes that no connection was made."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Reply = Callable[[BaseHTTPRequestHandler], None]


class Spot:
    """A local HTTP server that counts the connections it accepts and answers with `reply`."""

    def __init__(self, reply: Reply):
        spot = self
        self.accepts = 0

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request, client_address) -> bool:
                spot.accepts += 1
                return True

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                reply(self)

            do_POST = do_GET

            def log_message(self, *args) -> None:
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def send(handler: BaseHTTPRequestHandler, body: bytes, *, status: int = 200, kind: str = "application/json",
         headers: dict[str, str] | None = None, chunked: bool = False) -> None:
    handler.send_response(status)
    handler.send_header("content-type", kind)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    if chunked:
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()
        for i in range(0, len(body), 1000):
            piece = body[i:i + 1000]
            handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        handler.wfile.write(b"0\r\n\r\n")
        return
    handler.send_header("content-length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def completion(text: str) -> bytes:
    return json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()


def spots() -> Iterator[Callable[[Reply], Spot]]:
    """A factory of Spots for a fixture; closes them after the test."""
    made: list[Spot] = []

    def make(reply: Reply) -> Spot:
        made.append(Spot(reply))
        return made[-1]

    yield make
    for server in made:
        server.close()

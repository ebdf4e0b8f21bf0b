"""Real loopback servers that alerts are delivered to: a webhook and an SMTP server."""

from __future__ import annotations

import contextlib
import json
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    """What a sink got: JSON bodies (webhook) or raw messages (SMTP), and headers."""

    items: list = field(default_factory=list)
    headers: list = field(default_factory=list)
    event: threading.Event = field(default_factory=threading.Event)


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[int]:
    """Serve ``server`` on a thread until the block ends; yields its port."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]  # type: ignore[misc]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def webhook() -> Iterator[tuple[int, Received]]:
    """An HTTP server on 127.0.0.1 that keeps every JSON body POSTed to it."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.items.append(json.loads(body))
            received.headers.append(dict(self.headers))
            received.event.set()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as port:
        yield port, received


@contextlib.contextmanager
def smtp() -> Iterator[tuple[int, Received]]:
    """A minimal SMTP server on 127.0.0.1 (HELO/EHLO, MAIL, RCPT, DATA, QUIT)."""
    received = Received()

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(f"{line}\r\n".encode())

        def handle(self) -> None:
            self.reply("220 127.0.0.1 test SMTP")
            envelope: dict[str, object] = {"to": []}
            while raw := self.rfile.readline():
                command = raw.decode().strip()
                verb = command.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    self.reply("250 127.0.0.1")
                elif verb == "MAIL":
                    envelope["from"] = command
                    self.reply("250 OK")
                elif verb == "RCPT":
                    envelope["to"].append(command)  # type: ignore[union-attr]
                    self.reply("250 OK")
                elif verb == "DATA":
                    self.reply("354 end with .")
                    lines = []
                    while (line := self.rfile.readline()) not in (b".\r\n", b""):
                        lines.append(line.decode())
                    received.items.append({**envelope, "data": "".join(lines)})
                    received.event.set()
                    self.reply("250 queued")
                elif verb == "QUIT":
                    self.reply("221 bye")
                    return
                else:
                    self.reply("250 OK")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with serving(server) as port:
        yield port, received


def http_connection(port: int, token: str | None = None) -> str:
    """The ``lakehouse_alerts`` connection of a webhook sink, Airflow's JSON form."""
    conn: dict[str, object] = {"conn_type": "http", "host": "127.0.0.1", "port": port,
                               "extra": {"endpoint": "/hooks/lakehouse"}}  # fmt: skip
    if token:
        conn["password"] = token
    return json.dumps(conn)

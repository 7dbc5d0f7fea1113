"""A raw TCP server on a loopback port for tests of servers that misbehave below HTTP.

Each connection runs ``handler(connection, server)`` in a thread of its own, so the server
serves whichever event loop (asyncio or trio) the client under test runs on. The simulator
cannot do these things: it speaks correct HTTP by construction.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any

Handler = Callable[[socket.socket, "RawServer"], None]


class RawServer:
    """Accepts connections on 127.0.0.1 until closed; records every request head it read."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.stopping = threading.Event()
        self.heads: list[bytes] = []
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            connection.settimeout(10)
            self._handler(connection, self)

    def read_request(self, connection: socket.socket) -> bytes:
        """Read one request (head and a Content-Length body); return its head."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                break
            body += chunk
        self.heads.append(head)
        return head

    def close(self) -> None:
        self.stopping.set()
        self._accepting.join()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)


@contextlib.contextmanager
def raw_server(handler: Handler) -> Iterator[RawServer]:
    server = RawServer(handler)
    try:
        yield server
    finally:
        server.close()


def respond(
    body: bytes, *, status: bytes = b"200 OK", headers: dict[str, str] | None = None
) -> Handler:
    """A handler answering every request with ``body`` (Content-Length set)."""

    def handle(connection: socket.socket, server: RawServer) -> None:
        while server.read_request(connection):
            extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
            connection.sendall(
                b"HTTP/1.1 " + status + b"\r\n"
                + f"Content-Length: {len(body)}\r\n{extra}\r\n".encode()
                + body
            )  # fmt: skip

    return handle


def ssh_banner(connection: socket.socket, server: RawServer) -> None:
    """What an SSH server does: its banner first, then a complaint, then it hangs up."""
    connection.sendall(b"SSH-2.0-OpenSSH_8.9p1\r\n")
    server.read_request(connection)
    connection.sendall(b"Invalid SSH identification string.\r\n")


def bad_status_line(connection: socket.socket, server: RawServer) -> None:
    server.read_request(connection)
    connection.sendall(b"HTTP/1.1 abc OK\r\nContent-Length: 2\r\n\r\n{}")


def broken_chunks(connection: socket.socket, server: RawServer) -> None:
    server.read_request(connection)
    connection.sendall(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'10\r\n{"result": "OK",\r\nzz\r\nnot a chunk\r\n'
    )


def trickle(interval: float) -> Handler:
    """Headers at once, then one byte of the body every ``interval`` seconds, for ever (until
    the client goes away or the server closes)."""

    def handle(connection: socket.socket, server: RawServer) -> None:
        server.read_request(connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        while not server.stopping.wait(interval):
            connection.sendall(b" ")

    return handle


def compressed(envelope: bytes, coding: str) -> bytes:
    """``envelope`` in the content coding ``coding`` (``deflate-raw``: deflate as some
    servers send it, without the zlib wrapper)."""
    if coding == "gzip":
        return gzip.compress(envelope)
    if coding == "deflate":
        return zlib.compress(envelope)
    if coding == "deflate-raw":
        packer: Any = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return bytes(packer.compress(envelope) + packer.flush())
    raise ValueError(coding)

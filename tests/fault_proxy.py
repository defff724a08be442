"""A fault-injecting HTTP proxy in front of the S3 test store, for the storage fault tests.

It listens on 127.0.0.1 only, forwards each request to the store on a connection of its own
(``Connection: close``, so one request is one exchange), and can instead answer a share of
requests with 503 SlowDown or 500 InternalError (S3's XML error bodies), reset the connection,
stall matching requests, or go down altogether (connection refused) and come back on the same
port. It counts what it saw. It runs on its own event-loop thread and stops by itself after
``lifetime_s``, so a failed test never leaves it behind.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import random
import re
import socket
import threading
import time

ERRORS = {
    503: ("Service Unavailable", "SlowDown", "Please reduce your request rate."),
    500: ("Internal Server Error", "InternalError", "We encountered an internal error. Please try again."),
}
ATTEMPT = re.compile(rb"amz-sdk-request:\s*attempt=(\d+)", re.IGNORECASE)


def error_response(status: int) -> bytes:
    reason, code, message = ERRORS[status]
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<RequestId>fault-proxy</RequestId></Error>").encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    return head + body


class FaultProxy:
    """``FaultProxy(upstream_port, fail_rate=0.05)``; ``endpoint`` is what a StorageConfig points at.

    Faults: ``fail_rate`` of requests (chosen by a seeded random) get 503, 500 or a reset, in turn;
    :meth:`fail_next` plans faults for the next requests that match a pattern;
    a request whose first line matches ``stall_pattern`` waits ``stall_s`` before it is forwarded;
    :meth:`down` refuses connections until :meth:`up`; :meth:`down_after` goes down the moment a
    matching request has been answered.
    """

    def __init__(self, upstream_port: int, fail_rate: float = 0.0, seed: int = 0, lifetime_s: float = 600.0):
        self.upstream_port = upstream_port
        self.fail_rate = fail_rate
        self.stall_pattern: bytes | None = None
        self.stall_s = 0.0
        self._down_after: bytes | None = None
        self._refusing = False  # down: connections accepted before the listener closed get no answer either
        self.counts: collections.Counter = collections.Counter()
        self._planned: list[tuple[bytes, int | str]] = []  # (pattern, fault) for the next matching requests
        self._faulted: set[bytes] = set()  # request lines answered with a fault and not sent again yet
        self._random = random.Random(seed)
        self._kinds = itertools.cycle((503, 500, "reset"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._run, args=(lifetime_s,), daemon=True)
        self._thread.start()
        self.up()

    def fail_next(self, pattern: bytes, *faults: int | str) -> None:
        """Answers the next requests whose first line contains ``pattern`` with ``faults`` in turn (503, 500, "reset")."""
        self._planned += [(pattern, fault) for fault in faults]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, lifetime_s: float) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_later(lifetime_s, self._loop.stop)
        self._loop.run_forever()
        self._loop.close()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def up(self) -> None:
        """Listens (again) on the same port."""
        async def start():
            self._refusing = False
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self._call(start())

    def down(self) -> None:
        """Stops listening: new connections are refused, as by a stopped store."""
        async def stop():
            self._go_down()
        self._call(stop())

    def down_after(self, pattern: bytes) -> None:
        """Goes down (as :meth:`down`) right after relaying the answer to the next request whose first
        line contains ``pattern``: no request sent after that one reaches the store."""
        self._down_after = pattern

    @property
    def is_down(self) -> bool:
        return self._refusing

    def _go_down(self) -> None:
        self._refusing = True
        self._server.close()

    def stop(self) -> None:
        """Stops listening, ends every open exchange (a stalled one included) and the loop's thread."""
        async def shutdown():
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._thread.is_alive():
            self._call(shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def report(self) -> dict:
        """What the proxy saw so far. ``retries``: requests botocore marked as a retry (``amz-sdk-request:
        attempt>1``); ``recovered``: faults whose request was sent again; ``unrecovered``: faults not (yet) resent."""
        c = self.counts
        return {"requests": c["requests"], "faults": c[503] + c[500] + c["reset"], "503": c[503], "500": c[500],
                "reset": c["reset"], "retries": c["retries"], "recovered": c["recovered"],
                "unrecovered": len(self._faulted), "stalled": c["stalled"]}

    async def _read_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[bytes, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        if re.search(rb"\r\nexpect:\s*100-continue", head, re.IGNORECASE):  # botocore's uploads wait for it
            head = re.sub(rb"\r\nexpect:[^\r]*", b"", head, flags=re.IGNORECASE)
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        length = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
        body = await reader.readexactly(int(length.group(1))) if length else b""
        if re.search(rb"\r\ntransfer-encoding:\s*chunked", head, re.IGNORECASE):
            while True:  # keep the chunked framing as it is; the store reads it
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                body += size_line + await reader.readexactly(size + 2)
                if size == 0:
                    break
        return head, body

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head, body = await self._read_request(reader, writer)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if self._refusing:
                writer.transport.abort()
                return
            self.counts["requests"] += 1
            line = head.split(b"\r\n", 1)[0]
            attempt = ATTEMPT.search(head)
            if attempt and int(attempt.group(1)) > 1:
                self.counts["retries"] += 1
            if line in self._faulted:
                self._faulted.discard(line)
                self.counts["recovered"] += 1
            if self.stall_pattern is not None and self.stall_pattern in line:
                self.counts["stalled"] += 1
                await asyncio.sleep(self.stall_s)
            planned = next((p for p in self._planned if p[0] in line), None)
            if planned is not None:
                self._planned.remove(planned)
            if planned is not None or self._random.random() < self.fail_rate:
                kind = planned[1] if planned is not None else next(self._kinds)
                self.counts[kind] += 1
                self._faulted.add(line)
                if kind == "reset":
                    writer.transport.abort()  # RST: no answer at all
                    return
                writer.write(error_response(kind))
                await writer.drain()
                return
            await self._forward(head, body, writer)
            if self._down_after is not None and self._down_after in line:
                self._down_after = None
                self._go_down()
        finally:
            writer.close()

    async def _forward(self, head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            head = re.sub(rb"\r\nconnection:[^\r]*", b"", head, flags=re.IGNORECASE)
            up_writer.write(head[:-4] + b"\r\nConnection: close\r\n\r\n" + body)
            await up_writer.drain()
            answer = await up_reader.readuntil(b"\r\n\r\n")  # the client must not reuse a connection we close
            answer = re.sub(rb"\r\nconnection:[^\r]*", b"", answer, flags=re.IGNORECASE)
            writer.write(answer[:-4] + b"\r\nConnection: close\r\n\r\n")
            while chunk := await up_reader.read(1 << 16):  # the store closes after its answer
                writer.write(chunk)
                await writer.drain()
        finally:
            up_writer.close()


def wait_for(condition, timeout_s: float, what: str) -> None:
    """Polls ``condition()`` until it is true; raises after ``timeout_s`` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")
        time.sleep(0.1)

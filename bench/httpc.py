"""A small asyncio HTTP/1.1 client for the load and soak benchmarks: keep-alive connections
from a chosen local address, optional slow reading, and nothing else (no third-party
packages, so it runs on a fresh Debian python3)."""

import asyncio
import socket
import time


class HttpError(Exception):
    pass


class Conn:
    """One keep-alive connection. `local` picks the client address (a phone of its own)."""

    def __init__(self, host, port, local=None, rcvbuf=None):
        self.host, self.port, self.local, self.rcvbuf = host, port, local, rcvbuf
        self.reader = self.writer = None

    async def open(self, timeout=10):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if self.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        if self.local:
            sock.bind((self.local, 0))
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (self.host, self.port)), timeout)
        except BaseException:
            sock.close()
            raise
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=1 << 20)

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def get(self, path, headers=None, timeout=30, read_rate=None):
        """GET `path`; returns (status, head dict, body length). Reopens a closed connection
        once. `read_rate`: bytes per second to read the body at (a slow phone)."""
        for attempt in (0, 1):
            fresh = self.writer is None
            if fresh:
                await self.open(timeout)
            try:
                return await asyncio.wait_for(self._get(path, headers or {}, read_rate), timeout)
            except (ConnectionError, asyncio.IncompleteReadError, HttpError) as e:
                self.close()
                # A kept-alive connection the server closed meanwhile: retry on a new one.
                if fresh or attempt == 1 or not isinstance(e, (ConnectionError, asyncio.IncompleteReadError)):
                    raise
            except BaseException:
                self.close()
                raise
        raise HttpError("unreachable")

    async def _get(self, path, headers, read_rate):
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *rest = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise HttpError(f"bad status line {status_line!r}")
        status = int(parts[1])
        fields = {}
        for line in rest:
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
        if "content-length" not in fields:
            raise HttpError("no content-length")
        left = int(fields["content-length"])
        got = 0
        start = time.monotonic()
        while left > 0:
            want = min(left, 65536 if read_rate is None else max(1024, read_rate // 10))
            data = await self.reader.read(want)
            if not data:
                raise asyncio.IncompleteReadError(b"", left)
            got += len(data)
            left -= len(data)
            if read_rate:
                ahead = got / read_rate - (time.monotonic() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, fields, got


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def jain(values):
    """Jain's fairness index: 1 when everyone got the same, 1/n when one got everything."""
    values = [v for v in values if v > 0]
    if not values:
        return float("nan")
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


def rss_kb(pids, field="VmRSS"):
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total

#!/usr/bin/env python3
"""Load generator for bench/load.sh (asyncio, standard library only). Prints one JSON object.

  loadgen.py slow   --host H --port P --pages a,b,.. --slowfile PATH [--conns 2000 --slow 500 --duration 30]
      conns - slow keep-alive clients that each load a page every few seconds, slow/2 clients
      that trickle their headers (a byte a second, reconnecting when cut off), slow/2 that read
      a large body at 2 KB/s, and one measuring client that loads pages back to back: its
      latencies and errors are the result. Every client has its own address (127.x.y.z).
  loadgen.py phones --host H --port P --lessons a,b,.. --big PATH [--phones 200 --net 10.201]
      run inside the phones' network namespace: one client downloads PATH (a big file) while
      the phones, arriving over a few seconds, each load a lesson (entry page, then its style
      sheet and pictures over two connections, as a browser would).
"""

import argparse
import asyncio
import json
import random
import socket
import time

from httpc import Conn, HttpError, jain, percentile

ERRORS = (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, HttpError)


def addr(n):
    """A distinct loopback address for client n (127.10.0.1 upwards)."""
    n += 1
    return f"127.{10 + n // 65000}.{(n % 65000) // 250}.{1 + n % 250}"


async def keepalive_client(n, a, pages, stop, stats):
    rng = random.Random(n)
    conn = Conn(a.host, a.port, local=addr(n))
    await asyncio.sleep(rng.uniform(0, 5))  # ramp up
    while time.monotonic() < stop:
        try:
            status, _, _ = await conn.get(rng.choice(pages), {"Accept-Encoding": "gzip"}, timeout=30)
            stats["bg_ok" if status == 200 else "bg_status"] += 1
        except ERRORS:
            stats["bg_err"] += 1
            conn.close()
        await asyncio.sleep(rng.uniform(3, 7))
    conn.close()


async def trickler(n, a, stop, stats):
    """Sends a request head a byte a second, forever; counts how often it was cut off."""
    request = f"GET {a.slowfile} HTTP/1.1\r\nHost: x\r\n" + "X-Padding: " + "a" * 4000
    await asyncio.sleep(random.Random(n).uniform(0, 5))
    while time.monotonic() < stop:
        try:
            sock = socket.socket()
            sock.setblocking(False)
            sock.bind((addr(n), 0))
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (a.host, a.port)), 10)
            reader, writer = await asyncio.open_connection(sock=sock)
            for ch in request:
                if time.monotonic() >= stop:
                    break
                writer.write(ch.encode())
                await writer.drain()
                await asyncio.sleep(1)
                if reader.at_eof():
                    break
            else:
                pass
            if time.monotonic() < stop:
                stats["trickle_cut"] += 1
            writer.close()
        except ERRORS:
            if time.monotonic() < stop:
                stats["trickle_cut"] += 1
            await asyncio.sleep(1)


async def slow_reader(n, a, stop, stats):
    conn = Conn(a.host, a.port, local=addr(n), rcvbuf=4096)
    await asyncio.sleep(random.Random(n).uniform(0, 5))
    while time.monotonic() < stop:
        try:
            remaining = stop - time.monotonic()
            await conn.get(a.slowfile, timeout=max(1, remaining), read_rate=2048)
            stats["slow_done"] += 1
        except asyncio.TimeoutError:
            conn.close()
        except ERRORS:
            stats["slow_cut"] += 1
            conn.close()
            await asyncio.sleep(1)
    conn.close()


async def measurer(a, pages, start, stop, out):
    conn = Conn(a.host, a.port, local="127.9.0.1")
    rng = random.Random(0)
    while time.monotonic() < start:
        await asyncio.sleep(0.1)
    while time.monotonic() < stop:
        t0 = time.monotonic()
        try:
            status, _, _ = await conn.get(rng.choice(pages), {"Accept-Encoding": "gzip"}, timeout=10)
            if status == 200:
                out["lat"].append(time.monotonic() - t0)
            else:
                out["errors"].append(f"status {status}")
        except ERRORS as e:
            out["errors"].append(type(e).__name__)
            conn.close()
        await asyncio.sleep(0.02)
    conn.close()


async def slow(a):
    pages = a.pages.split(",")
    t0 = time.monotonic()
    stop = t0 + a.duration
    stats = {k: 0 for k in ("bg_ok", "bg_status", "bg_err", "trickle_cut", "slow_done", "slow_cut")}
    out = {"lat": [], "errors": []}
    normal = a.conns - a.slow
    tasks = [keepalive_client(i, a, pages, stop, stats) for i in range(normal)]
    tasks += [trickler(normal + i, a, stop, stats) for i in range(a.slow // 2)]
    tasks += [slow_reader(normal + a.slow // 2 + i, a, stop, stats) for i in range(a.slow - a.slow // 2)]
    tasks.append(measurer(a, pages, t0 + 6, stop, out))  # after the ramp-up
    await asyncio.gather(*tasks)
    lat = out["lat"]
    return dict(
        requests=len(lat) + len(out["errors"]),
        errors=len(out["errors"]),
        error_kinds=sorted(set(out["errors"]))[:5],
        p50_ms=percentile(lat, 50) * 1000,
        p99_ms=percentile(lat, 99) * 1000,
        max_ms=max(lat) * 1000 if lat else float("nan"),
        **stats,
    )


async def phone(n, a, lesson, t_start, results):
    await asyncio.sleep(max(0, t_start - time.monotonic()))
    local = f"{a.net}.1.{1 + n}"
    conns = [Conn(a.host, a.port, local=local), Conn(a.host, a.port, local=local)]
    t0 = time.monotonic()
    got = 0
    errors = 0
    try:
        status, _, n_bytes = await conns[0].get(f"/lessons/{lesson}/index.html", {"Accept-Encoding": "gzip"}, timeout=120)
        got += n_bytes
        errors += status != 200
        assets = ["style.css"] + [f"img/p{i}.png" for i in range(4)]

        async def fetch_on(c, paths):
            nonlocal got, errors
            for p in paths:
                status, _, n_bytes = await c.get(f"/lessons/{lesson}/{p}", {"Accept-Encoding": "gzip"}, timeout=120)
                got += n_bytes
                errors += status != 200

        await asyncio.gather(fetch_on(conns[0], assets[0::2]), fetch_on(conns[1], assets[1::2]))
    except ERRORS:
        errors += 1
    took = time.monotonic() - t0
    for c in conns:
        c.close()
    results.append(dict(took=took, bytes=got, errors=errors))


async def big_download(a, done, out):
    """Downloads the big file until it ends or the phones are done; records its rate."""
    conn = Conn(a.host, a.port, local=f"{a.net}.2.1")
    t0 = time.monotonic()
    got = 0
    try:
        await conn.open()
        conn.writer.write(f"GET {a.big} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await conn.writer.drain()
        while not done.is_set():
            try:
                data = await asyncio.wait_for(conn.reader.read(65536), 0.5)
            except asyncio.TimeoutError:
                continue
            if not data:
                break
            got += len(data)
    except ERRORS:
        pass
    took = time.monotonic() - t0
    out.update(bytes=got, took=took, mbit=got * 8 / 1e6 / took)
    conn.close()


async def phones(a):
    lessons = a.lessons.split(",")
    rng = random.Random(1)
    t0 = time.monotonic()
    big = {}
    results = []
    done = asyncio.Event()
    download = asyncio.create_task(big_download(a, done, big))
    await asyncio.sleep(2)  # the download has the link to itself first
    start = time.monotonic()
    await asyncio.gather(*(phone(i, a, rng.choice(lessons), start + rng.uniform(0, a.arrival), results) for i in range(a.phones)))
    phones_done = time.monotonic() - start
    done.set()
    await download
    took = [r["took"] for r in results if not r["errors"]]
    return dict(
        phones=len(results),
        phone_errors=sum(1 for r in results if r["errors"]),
        p50_s=percentile(took, 50),
        p90_s=percentile(took, 90),
        p99_s=percentile(took, 99),
        max_s=max(took) if took else float("nan"),
        all_phones_s=phones_done,
        jain=jain([r["bytes"] / r["took"] for r in results if not r["errors"]]),
        # the same with the download as one more client (its rate while the phones loaded)
        jain_with_video=jain([r["bytes"] / r["took"] for r in results if not r["errors"]] + [big.get("bytes", 0) / big.get("took", 1)]),
        jain_times=jain(took),
        big_mbit=big.get("mbit"),
        per_phone=sorted((round(r["took"], 3), r["bytes"]) for r in results),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["slow", "phones"])
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pages", default="")
    ap.add_argument("--slowfile", default="")
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--slow", type=int, default=500)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--lessons", default="")
    ap.add_argument("--big", default="")
    ap.add_argument("--phones", type=int, default=200)
    ap.add_argument("--arrival", type=float, default=1)
    ap.add_argument("--net", default="10.201")
    a = ap.parse_args()
    result = asyncio.run(slow(a) if a.mode == "slow" else phones(a))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

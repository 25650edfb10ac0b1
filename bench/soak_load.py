#!/usr/bin/env python3
"""Mixed page and media load for bench/soak.sh: workers on their own client addresses fetch
lesson pages, pictures and ranges of videos until a stop file appears, and every request's
outcome is recorded, so the script can tell requests lost to a restart from others.

Usage: soak_load.py --port P --stop FILE --out FILE.json [--workers 24]
"""

import argparse
import asyncio
import json
import os
import random
import time
import urllib.request

from httpc import Conn, HttpError

HOST = "127.0.0.1"


async def catalogue(port):
    """Every lesson file: (path, size, media type), from the JSON API."""
    def fetch(path):
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=10) as r:
            return json.load(r)

    files = []
    loop = asyncio.get_running_loop()
    lessons = (await loop.run_in_executor(None, fetch, "/api/v1/lessons"))["lessons"]
    for lesson in lessons:
        lid = lesson.get("id") or lesson["meta"]["id"]
        detail = await loop.run_in_executor(None, fetch, f"/api/v1/lessons/{lid}")
        for f in detail.get("files", []):
            files.append((f"/lessons/{lid}/{f['path']}", f["size"], f.get("media_type", "")))
    return files


async def worker(n, port, state, log, stop):
    rng = random.Random(n)
    conn = Conn(HOST, port, local=f"127.0.{10 + n // 200}.{1 + n % 200}")
    while not os.path.exists(stop):
        files = state["files"]
        if not files:
            await asyncio.sleep(0.2)
            continue
        path, size, media = rng.choice(files)
        headers = {"Accept-Encoding": "gzip"} if rng.random() < 0.7 else {}
        big = size > 1_000_000
        if big:
            start = rng.randrange(0, max(1, size - 300_000))
            headers["Range"] = f"bytes={start}-{start + 262_143}"
        t0 = time.time()
        try:
            status, _, got = await conn.get(path, headers, timeout=30)
            ok = status in (200, 206, 304)
            err = None if ok else f"status {status}"
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, HttpError) as e:
            ok, err, got = False, f"{type(e).__name__}: {e}", 0
            conn.close()
        log.append((t0, time.time(), ok, err, path, got))
        await asyncio.sleep(rng.uniform(0.0, 0.05))
    conn.close()


async def refresh(port, state, stop):
    while not os.path.exists(stop):
        try:
            state["files"] = await catalogue(port)
        except Exception:  # the server is restarting: keep the old list
            pass
        for _ in range(50):
            if os.path.exists(stop):
                return
            await asyncio.sleep(0.2)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--stop", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--workers", type=int, default=24)
    a = ap.parse_args()
    state = {"files": []}
    log = []
    await asyncio.gather(refresh(a.port, state, a.stop), *(worker(i, a.port, state, log, a.stop) for i in range(a.workers)))
    json.dump(log, open(a.out, "w"))


if __name__ == "__main__":
    asyncio.run(main())

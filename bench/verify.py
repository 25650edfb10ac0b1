#!/usr/bin/env python3
"""Check that the servers return the corpus files byte for byte.

For every distinct URL of the mix and every server: GET without
Accept-Encoding (body must equal the file) and with `Accept-Encoding: gzip`
(body, gunzipped if Content-Encoding is gzip, must equal the file). Also
compares Content-Type between servers. Prints a summary, writes JSON to --json,
and exits 1 if any response was not 200 or not byte-identical.

Usage: verify.py --mix URLS.files --corpus DIR --json OUT name=http://host:port ...
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import sys
from collections import Counter, defaultdict
from urllib.parse import urlsplit


class Client:
    def __init__(self, base: str):
        u = urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.conn = None

    def get(self, path: str, headers: dict[str, str]):
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                self.conn.request("GET", path, headers=headers)
                r = self.conn.getresponse()
                body = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, {k.lower(): v for k, v in r.getheaders()}, body
            except (http.client.HTTPException, OSError):
                if self.conn:
                    self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mix", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("servers", nargs="+")
    a = ap.parse_args()

    servers = dict(s.split("=", 1) for s in a.servers)
    items = {}
    for line in open(a.mix):
        u, lid, rel = json.loads(line)
        items[u] = (lid, rel)

    problems: list[str] = []
    stats = {name: Counter() for name in servers}
    ctypes: dict[str, dict[str, str]] = defaultdict(dict)
    for name, base in servers.items():
        c = Client(base)
        st = stats[name]
        for u, (lid, rel) in items.items():
            want = open(os.path.join(a.corpus, lid, rel), "rb").read()
            for mode, hdrs in (("identity", {}), ("gzip", {"Accept-Encoding": "gzip"})):
                try:
                    status, h, body = c.get(u, hdrs)
                except Exception as e:  # noqa: BLE001
                    problems.append(f"{name} {mode} {u}: request failed: {e!r}")
                    st["failed"] += 1
                    continue
                st[f"{mode}_status_{status}"] += 1
                if status != 200:
                    if len(problems) < 200:
                        problems.append(f"{name} {mode} {u}: HTTP {status} {body[:120]!r}")
                    st["bad"] += 1
                    continue
                enc = h.get("content-encoding", "")
                if enc == "gzip":
                    if mode == "identity":
                        problems.append(f"{name} {u}: gzip sent without Accept-Encoding")
                        st["bad"] += 1
                        continue
                    st["gzip_responses"] += 1
                    st["gzip_bytes"] += len(body)
                    st["gzip_plain_bytes"] += len(want)
                    try:
                        body = gzip.decompress(body)
                    except Exception as e:  # noqa: BLE001
                        problems.append(f"{name} {u}: bad gzip body: {e!r}")
                        st["bad"] += 1
                        continue
                elif enc:
                    problems.append(f"{name} {mode} {u}: unexpected Content-Encoding {enc}")
                if body != want:
                    st["bad"] += 1
                    if len(problems) < 200:
                        problems.append(f"{name} {mode} {u}: body differs from file "
                                        f"({len(body)} bytes vs {len(want)})")
                    continue
                st[f"{mode}_ok"] += 1
                if mode == "identity":
                    ctypes[u][name] = h.get("content-type", "")

    ct_diff = Counter()
    names = list(servers)
    for u, m in ctypes.items():
        if len(m) == len(names) and len(set(m.values())) > 1:
            ext = items[u][1].rsplit(".", 1)[-1] if "." in items[u][1] else "(none)"
            ct_diff[(ext,) + tuple(m[n] for n in names)] += 1

    bad = sum(st["bad"] + st["failed"] for st in stats.values())
    print(f"verify: {len(items)} distinct URLs x {len(servers)} servers x (identity, gzip)")
    for name, st in stats.items():
        gz = st["gzip_responses"]
        ratio = st["gzip_bytes"] / st["gzip_plain_bytes"] if gz else 0
        print(f"verify:   {name}: identity ok {st['identity_ok']}, gzip ok {st['gzip_ok']} "
              f"(gzip-encoded {gz}, compressed/plain {ratio:.3f}), bad {st['bad'] + st['failed']}")
    for (ext, *cts), n in sorted(ct_diff.items()):
        print(f"verify:   Content-Type differs for {n} .{ext} URLs: " +
              ", ".join(f"{nm}={ct!r}" for nm, ct in zip(names, cts)))
    for p in problems[:30]:
        print("verify:   PROBLEM " + p)
    if len(problems) > 30:
        print(f"verify:   ... {len(problems) - 30} more problems")
    with open(a.json, "w") as f:
        json.dump(dict(urls=len(items), stats={k: dict(v) for k, v in stats.items()},
                       problems=problems,
                       content_type_diffs=[[*k, v] for k, v in ct_diff.items()]), f, indent=1)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

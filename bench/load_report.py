#!/usr/bin/env python3
"""Side-by-side table for bench/load.sh: results.jsonl -> LOAD.md (with ratios to nginx).

Usage: load_report.py RESULTS.jsonl OUT.md COMMAND DARS_VERSION NGINX_VERSION
"""

import datetime
import json
import subprocess
import sys


def fmt(v, spec):
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return format(v, spec)


def ratio(a, b):
    try:
        return f"{a / b:.2f}"
    except (TypeError, ZeroDivisionError):
        return "-"


def main():
    results, out, command, dars_version, nginx_version = sys.argv[1:6]
    rows = [json.loads(l) for l in open(results) if l.strip()]
    a = {r["server"]: r for r in rows if r["scenario"] == "a"}
    b = [r for r in rows if r["scenario"] == "b"]
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Load suite: dars and nginx under the same conditions",
        "",
        f"- Command: `{command}`",
        f"- When: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; `uptime`: {uptime}",
        f"- Versions: {dars_version}; {nginx_version} (bench/nginx_conf.py: 2 workers, sendfile, gzip_static)",
        "- The machine is shared with other builds: compare the two columns of one run, not runs.",
        "",
        "## (a) 2,000 connections, 500 of them slow, while one client loads pages",
        "",
        "1,500 keep-alive clients load a page every 3-7 s; 250 trickle a request head a byte a second",
        "(reconnecting when cut off); 250 read a 2 MB file at 2 KB/s; every client has its own",
        "address. One more client loads pages (gzip) back to back after a 6 s ramp-up.",
        "",
        "| | nginx | dars | dars / nginx |",
        "|---|---|---|---|",
    ]
    n, d = a.get("nginx", {}).get("r", {}), a.get("dars", {}).get("r", {})
    for key, label, spec in [
        ("requests", "measuring client: pages loaded", "d"),
        ("p50_ms", "its p50 latency (ms)", ".1f"),
        ("p99_ms", "its p99 latency (ms)", ".1f"),
        ("max_ms", "its slowest (ms)", ".1f"),
        ("errors", "its errors", "d"),
        ("bg_ok", "keep-alive clients: pages loaded", "d"),
        ("bg_err", "keep-alive clients: errors", "d"),
        ("trickle_cut", "tricklers cut off (times)", "d"),
        ("slow_done", "slow readers: bodies finished", "d"),
        ("slow_cut", "slow readers: cut off", "d"),
    ]:
        lines.append(f"| {label} | {fmt(n.get(key), spec)} | {fmt(d.get(key), spec)} | {ratio(d.get(key), n.get(key))} |")
    lines.append(
        f"| peak RSS (MB) | {fmt(a.get('nginx', {}).get('rss_mb'), '.1f')} | {fmt(a.get('dars', {}).get('rss_mb'), '.1f')} "
        f"| {ratio(a.get('dars', {}).get('rss_mb'), a.get('nginx', {}).get('rss_mb'))} |"
    )
    lines += [
        "",
        "## (b) phones behind a shaped 20 Mbit/s link while one client downloads a 40 MB video",
        "",
        "The phones live in a network namespace joined to the server by a veth pair shaped each way",
        "with tbf (20 Mbit/s, queue up to 300 ms; plus netem delay when the kernel has netem). The",
        "download starts 2 s before the phones, which arrive within 1 s, and runs until they are",
        "done; each phone loads a lesson's page, then its style sheet and four pictures over two",
        "connections (about 85 kB with gzip). Completion time per phone, and Jain's fairness",
        "index (1 = all equal, 1/n = one took everything) three ways: over the phones' rates",
        "(bytes / completion time), over those and the download's rate, and over the phones'",
        "completion times. The first punishes a phone for being fast: when the early phones",
        "find the queue short they finish in 0.1 s, 50 times the rate of the rest, and the",
        "index falls, while under a full queue every phone is equally slow.",
    ]
    for phones in sorted({r.get("phones", 0) for r in b}, reverse=True):
        group = [r for r in b if r.get("phones", 0) == phones]
        lines += [
            "",
            f"### {phones} phones",
            "",
            "| server | phones ok | p50 (s) | p90 (s) | p99 (s) | slowest (s) | all done (s) | Jain (rates) | Jain (rates + video) | Jain (times) | video while the phones load (Mbit/s) | peak RSS (MB) | p90 / nginx |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        base = next((r["r"] for r in group if r["server"] == "nginx"), {})
        for r in group:
            x = r["r"]
            lines.append(
                f"| {r['server']} | {x['phones'] - x['phone_errors']}/{x['phones']} | {fmt(x['p50_s'], '.2f')} | {fmt(x['p90_s'], '.2f')} "
                f"| {fmt(x['p99_s'], '.2f')} | {fmt(x['max_s'], '.2f')} | {fmt(x['all_phones_s'], '.1f')} | {fmt(x['jain'], '.3f')} "
                f"| {fmt(x.get('jain_with_video'), '.3f')} | {fmt(x.get('jain_times'), '.3f')} "
                f"| {fmt(x.get('big_mbit'), '.1f')} | {fmt(r['rss_mb'], '.1f')} | {ratio(x['p90_s'], base.get('p90_s'))} |"
            )
    peak = max((r["rss_mb"] for r in rows if r["server"].startswith("dars")), default=None)
    lines += ["", f"## (c) dars peak RSS over all runs: {fmt(peak, '.1f')} MB (target: at most 64 MB)", ""]
    open(out, "w").write("\n".join(lines))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Turn the serving-benchmark measurements into a Markdown report.

Inputs (all written by bench/serve.sh under bench/out/):
  --meta     JSON: mode, machine, versions, durations, notes
  --corpus   JSON from corpus.py
  --mix      JSON from urlmix.py
  --import   JSON: dars import and cp -r timings (may be absent)
  --verify   JSON from verify.py (may be absent)
  --runs     JSON lines, one per (server, connections) wrk run
Writes the Markdown to --out and prints it.
"""

from __future__ import annotations

import argparse
import json
import os

TARGETS = dict(rps=0.7, cpu=1.5, rss_mb=64, bytes=1.0)


def load(path, default=None):
    if path and os.path.exists(path) and os.path.getsize(path) > 0:
        with open(path) as f:
            return json.load(f)
    return default


def fmt_s(x):
    return "-" if x is None else f"{x:.2f} s"


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


def verdict(value, limit, ge):
    if value is None:
        return "n/a"
    ok = value >= limit if ge else value <= limit
    return "PASS" if ok else "FAIL"


def main() -> None:
    ap = argparse.ArgumentParser()
    for k in ("meta", "corpus", "mix", "import", "verify", "runs", "out"):
        ap.add_argument("--" + k)
    a = ap.parse_args()

    meta = load(a.meta, {})
    corpus = load(a.corpus, {})
    mix = load(a.mix, {})
    imp = load(getattr(a, "import"), None)
    ver = load(a.verify, None)
    runs = []
    if a.runs and os.path.exists(a.runs):
        runs = [json.loads(l) for l in open(a.runs) if l.strip()]

    L: list[str] = []
    L.append(f"## dars serving benchmark ({meta.get('mode', '?')})")
    L.append("")
    L.append(f"- Date: {meta.get('date', '?')}; machine: {meta.get('machine', '?')}")
    L.append(f"- Versions: {meta.get('versions', '?')}")
    mb = corpus.get("bytes", 0) / 1e6
    L.append(f"- Corpus: {corpus.get('lessons', '?')} lessons, {corpus.get('files', '?')} files, "
             f"{mb:.1f} MB from Debian packages {meta.get('packages', '?')}")
    L.append(f"- URL mix: {mix.get('urls', '?')} URLs ({mix.get('distinct', '?')} distinct, "
             f"{mix.get('sessions', '?')} simulated browsing sessions): {mix.get('desc', '?')}")
    L.append(f"- Load: {meta.get('load', '?')}")
    L.append("")

    if imp:
        L.append("### Import (corpus folder -> store)")
        L.append("")
        n = max(len(imp.get("dars", [])), len(imp.get("cp", [])))
        hdr = "| | " + " | ".join(f"run {i + 1}" for i in range(n)) + " | MB/s (last run) |"
        L.append(hdr)
        L.append("|---" * (n + 2) + "|")

        def row(name, xs):
            xs = list(xs) + [None] * (n - len(xs))
            last = next((x for x in reversed(xs) if x), None)
            rate = f"{mb / last:.1f}" if last else "-"
            return f"| {name} | " + " | ".join(fmt_s(x) for x in xs) + f" | {rate} |"

        if imp.get("dars_error"):
            L.append(f"| dars import | FAILED: {imp['dars_error']} |" + " |" * n)
        else:
            L.append(row("`dars import`", imp.get("dars", [])))
        if imp.get("dars_cpu"):
            L.append("| `dars import` CPU (user+sys) | "
                     + " | ".join(fmt_s(x) for x in imp["dars_cpu"]) + " |" * (n - len(imp["dars_cpu"]))
                     + " |")
        L.append(row("`cp -r`", imp.get("cp", [])))
        L.append(row("`cp -r` + `sync`", imp.get("cp_sync", [])))
        rs = [ratio(d, c) for d, c in zip(imp.get("dars", []), imp.get("cp", []))]
        if rs:
            L.append("| ratio dars / `cp -r` | " + " | ".join(f"{r:.2f}" if r else "-" for r in rs)
                     + " | |")
        if imp.get("store_bytes"):
            L.append("")
            L.append(f"Store size: {imp['store_bytes'] / 1e6:.1f} MB "
                     f"({imp['store_bytes'] / max(corpus.get('bytes', 1), 1):.2f} x corpus).")
        L.append("")

    L.append("### Serving (wrk, `Accept-Encoding: gzip`)")
    L.append("")
    L.append("| conns | server | req/s | p50 ms | p99 ms | CPU ms / 1k req | peak RSS MB "
             "| bytes / req | non-2xx | socket errors | threads | other load |")
    L.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    # Several rounds: keep each case's best (highest req/s) run, list the others' req/s.
    by: dict = {}
    all_rps: dict = {}
    for r in runs:
        k = (r["server"], r["conns"])
        w = r.get("wrk") or {}
        rps = (w.get("requests", 0) / (w["duration_us"] / 1e6)) if w.get("duration_us") else -1
        r["_rps"] = rps
        all_rps.setdefault(k, []).append(rps)
        if k not in by or rps > by[k]["_rps"]:
            by[k] = r
    rounds = max((len(v) for v in all_rps.values()), default=1)
    conns_list = sorted({r["conns"] for r in runs})
    targets_rows = []
    invalid = []
    invalid_soft = []

    def derived(r):
        w = r.get("wrk") or {}
        reqs = w.get("requests") or 0
        dur = (w.get("duration_us") or 1) / 1e6
        cpu_ms = r.get("cpu_ticks", 0) * 1000 / r.get("clk_tck", 100)
        return dict(
            rps=reqs / dur if reqs else None,
            p50=w.get("p50_us", 0) / 1000 if reqs else None,
            p99=w.get("p99_us", 0) / 1000 if reqs else None,
            cpu=cpu_ms / reqs * 1000 if reqs else None,
            rss=r.get("hwm_kb", 0) / 1024 if r.get("hwm_kb") else None,
            bpr=w.get("bytes", 0) / reqs if reqs else None,
            non2xx=w.get("status", 0),
            sock=sum(w.get(k, 0) for k in ("connect", "read", "write", "timeout")),
            sockd=", ".join(f"{k} {w[k]}" for k in ("connect", "read", "write", "timeout")
                            if w.get(k)),
            threads=r.get("threads"),
            other=(max(0.0, (r["busy_ticks"] - r["cpu_ticks"] - r["wrk_cpu_s"] * r["clk_tck"])
                       / r["clk_tck"] / dur / r["ncpu"] * 100) if "busy_ticks" in r else None),
        )

    def num(x, f="{:.0f}"):
        return "-" if x is None else f.format(x)

    for c in conns_list:
        ds = {}
        for s in ("nginx", "dars"):
            r = by.get((s, c))
            if not r:
                continue
            if r.get("error"):
                L.append(f"| {c} | {s} | FAILED: {r['error']} | | | | | | | | | |")
                invalid.append(f"{s} at {c} connections: {r['error']}")
                continue
            d = derived(r)
            ds[s] = d
            if d["non2xx"] or d["sock"]:
                invalid.append(f"{s} at {c} connections: {d['non2xx']} non-2xx/3xx responses, "
                               f"socket errors: {d['sockd'] or 0}")
            others = sorted(all_rps.get((s, c), []), reverse=True)
            rps_txt = num(d["rps"])
            if len(others) > 1:
                rps_txt += " (" + " / ".join(f"{x:.0f}" for x in others) + ")"
            if d["other"] is not None and d["other"] > 10:
                invalid_soft.append(f"{s} at {c} connections: {d['other']:.0f}% of the CPUs were "
                                    f"used by other processes during the best run")
            L.append(f"| {c} | {s} | {rps_txt} | {num(d['p50'], '{:.2f}')} "
                     f"| {num(d['p99'], '{:.2f}')} | {num(d['cpu'], '{:.1f}')} "
                     f"| {num(d['rss'], '{:.1f}')} | {num(d['bpr'])} | {d['non2xx']} "
                     f"| {d['sockd'] or 0} | {num(d['threads'])} | {num(d['other'], '{:.0f}%')} |")
        if "nginx" in ds and "dars" in ds:
            n, d = ds["nginx"], ds["dars"]
            rr = dict(rps=ratio(d["rps"], n["rps"]), p50=ratio(d["p50"], n["p50"]),
                      p99=ratio(d["p99"], n["p99"]), cpu=ratio(d["cpu"], n["cpu"]),
                      rss=ratio(d["rss"], n["rss"]), bpr=ratio(d["bpr"], n["bpr"]))
            L.append(f"| {c} | **dars / nginx** | **{num(rr['rps'], '{:.2f}')}** (>= {TARGETS['rps']}) "
                     f"| {num(rr['p50'], '{:.2f}')} | {num(rr['p99'], '{:.2f}')} "
                     f"| **{num(rr['cpu'], '{:.2f}')}** (<= {TARGETS['cpu']}) "
                     f"| {num(rr['rss'], '{:.2f}')} "
                     f"| **{num(rr['bpr'], '{:.4f}')}** (<= {TARGETS['bytes']}) | | | | |")
            targets_rows.append((c, rr, d))
            if n["other"] is not None and d["other"] is not None and abs(n["other"] - d["other"]) > 10:
                invalid_soft.append(f"at {c} connections the other load differed between the two "
                                    f"servers' best runs (nginx {n['other']:.0f}%, dars "
                                    f"{d['other']:.0f}%), so their ratios are skewed")
    L.append("")

    if targets_rows:
        L.append("### Targets")
        L.append("")
        L.append("| target | " + " | ".join(f"{c} conns" for c, _, _ in targets_rows) + " |")
        L.append("|---" * (len(targets_rows) + 1) + "|")

        def trow(name, f):
            return f"| {name} | " + " | ".join(f(c, rr, d) for c, rr, d in targets_rows) + " |"

        L.append(trow(f"req/s ratio dars/nginx >= {TARGETS['rps']}", lambda c, rr, d:
                      f"{num(rr['rps'], '{:.2f}')} {verdict(rr['rps'], TARGETS['rps'], True)}"))
        L.append(trow(f"CPU per request ratio <= {TARGETS['cpu']}", lambda c, rr, d:
                      f"{num(rr['cpu'], '{:.2f}')} {verdict(rr['cpu'], TARGETS['cpu'], False)}"))
        L.append(trow(f"dars peak RSS <= {TARGETS['rss_mb']} MB (at 500 conns)", lambda c, rr, d:
                      f"{num(d['rss'], '{:.1f}')} MB "
                      + (verdict(d['rss'], TARGETS['rss_mb'], False) if c >= 500 else "(info)")))
        L.append(trow(f"bytes per request ratio <= {TARGETS['bytes']}", lambda c, rr, d:
                      f"{num(rr['bpr'], '{:.4f}')} {verdict(rr['bpr'], TARGETS['bytes'], False)}"))
        L.append("")

    L.append("### Validity")
    L.append("")
    if ver:
        for name, st in ver.get("stats", {}).items():
            bad = st.get("bad", 0) + st.get("failed", 0)
            L.append(f"- Byte check {name}: {ver['urls']} distinct URLs, identity ok "
                     f"{st.get('identity_ok', 0)}, gzip ok {st.get('gzip_ok', 0)} (gzip-encoded "
                     f"{st.get('gzip_responses', 0)}), bad {bad}")
            if bad:
                invalid.append(f"byte check: {name} had {bad} bad responses")
        for ext, *rest in ver.get("content_type_diffs", []):
            cnt = rest[-1]
            cts = rest[:-1]
            L.append(f"- Content-Type differs for {cnt} `.{ext}` URLs: "
                     + " vs ".join(f"`{ct}`" for ct in cts))
        for p in ver.get("problems", [])[:10]:
            L.append(f"  - `{p}`")
    for note in meta.get("notes", []):
        L.append(f"- {note}")
    for x in invalid_soft:
        L.append(f"- Disturbed: {x} (the machine is shared; compare with care)")
    if invalid:
        L.append("- **INVALID RUN**: " + "; ".join(invalid))
    else:
        L.append("- No non-2xx responses, no socket errors, all checked bodies byte-identical.")
    L.append("")
    L.append(f"CPU = utime+stime of the server process(es) from /proc (nginx: master + "
             f"workers) during the measured run; peak RSS = sum of VmHWM (nginx: master + "
             f"workers); bytes/req = wrk bytes read (headers + bodies) / requests; threads = "
             f"threads of the server process(es) at the end of the run; other load = CPU used "
             f"by processes other than the server and wrk during the run, in % of all cores. "
             f"Each run starts a fresh server and warms it up first"
             + (f"; {rounds} rounds were run and each row is the case's best run by req/s "
                f"(all rounds' req/s in brackets)." if rounds > 1 else "."))
    md = "\n".join(L) + "\n"
    with open(a.out, "w") as f:
        f.write(md)
    print(md, end="")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Markdown report of bench/sync.sh from the JSON files in RES (bench/out/sync-res[-quick]).

Usage: sync_report.py RES
"""

from __future__ import annotations

import json
import os
import statistics
import sys


def load(res: str, name: str):
    p = os.path.join(res, name + ".json")
    return json.load(open(p)) if os.path.exists(p) else None


def mb(n: float) -> str:
    return f"{n / 1e6:,.2f} MB"


def num(n: float) -> str:
    return f"{int(n):,}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def main() -> None:
    res = sys.argv[1]
    meta = load(res, "meta")
    split = load(res, "split") or {}
    v2 = load(res, "v2") or {}
    variants = meta["variants"]
    out: list[str] = []
    w = out.append

    w(f"## dars sync benchmark ({meta['mode']}, {meta['date']})")
    w("")
    w(f"- command: `{meta['command']}`")
    w(f"- machine: {meta['nproc']} CPUs (nproc), {meta['cpu']}, {meta['mem_mib']:,} MiB RAM, "
      f"Linux {meta['kernel']}")
    dirty = (f" + uncommitted changes in {meta['dirty']} file(s) of src/ or Cargo.*" if meta["dirty"] else "")
    w(f"- dars: {meta['dars_version']}, git commit {meta['commit']}{dirty} (release build)")
    w(f"- servers: nginx {meta['nginx_version']} (1 worker, sendfile, no gzip, default keep-alive), "
      f"{meta['rsync_version']} (daemon mode); everything on 127.0.0.1")
    w(f"- corpus: `{meta['corpus']}`: {num(split.get('files', 0))} files, {mb(split.get('bytes', 0))}, "
      f"{split.get('source_lessons', '?')} lessons re-cut into **{split.get('lessons', '?')} lessons** "
      f"(`packages_tool.py split`: each lesson's files, in path order, cut into stretches of about "
      f"{mb(split.get('target_bytes', 0))}, each its own lesson)")
    changes = v2.get("changes", [])
    w(f"- v2 changes **{v2.get('changed_lessons', '?')} of {v2.get('lessons', '?')} lessons** "
      f"({v2.get('pct', '?')} %, `packages_tool.py v2`): in each, every {ordinal(v2.get('text_every', 0))} text file "
      f"gets one changed line, one HTML page is added, one picture gets 16 bytes appended "
      f"({', '.join(c['lesson'] for c in changes)}; {sum(c['edited'] for c in changes)} text files edited)")
    w("")

    # ------------------------------------------------------------ 1. update transfer
    w("### 1. Update transfer: v1 → v2")
    w("")
    w("v1 is published with `--seq 1`, v2 with `--seq 2`, each into its own folder, both with the default "
      "(a zstd dictionary trained on the package's text, when it pays) and with `--no-dictionary`. "
      "**dars**: a store syncs v1 from nginx, then `dars sync` v2: bytes = sum of nginx's `$bytes_sent` "
      "(headers + bodies) over that sync's requests, client → server = sum of `$request_length`. "
      "**rsync**: a `cp -a` copy of v1's folder is updated from v2's through the rsync daemon: "
      "`rsync -az --delete --stats rsync://127.0.0.1:PORT/<variant>/ copy/` (the copy is then checked "
      "equal to v2 with `diff -r`); bytes = rsync's *Total bytes received* / *sent*.")
    w("")
    w("| variant | v2 package | blob files | manifest JSON | its `.json.zst` copy | JSON gzip -6 / zstd -19 | "
      "dictionary | new blobs (not in v1) | files that differ by name from v1 |")
    w("|---|---:|---:|---:|---:|---:|---|---:|---:|")
    pkgs = {}
    for v in variants:
        p = load(res, f"pkg-{v}")
        g = load(res, f"manifest-{v}") or {}
        pkgs[v] = p
        if not p:
            continue
        dic = "none" if not p.get("dictionary") else ("same as v1" if p["same_dictionary"] else "new (differs from v1)")
        w(f"| {v} | {mb(p['bytes'])} | {num(p['kinds'].get('blobs', {}).get('files', 0))} | "
          f"{mb(p['manifest_bytes'])} | {mb(p['manifest_zst_bytes']) if p.get('manifest_zst_bytes') else 'none'} | "
          f"{mb(g.get('gzip6', 0))} / {mb(g.get('zstd19', 0))} | {dic} | "
          f"{p['new_blobs']} ({mb(p['new_blob_stored_bytes'])}) | "
          f"{p['by_name_differ'] + p['by_name_added']} ({mb(p['by_name_differ_bytes'] + p['by_name_added_bytes'])}) |")
    w("")
    w("| variant | transfer | server → client | client → server | total | requests / files | wall | "
      "↓ ÷ rsync ↓ | total ÷ rsync total |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    verdicts = []
    for v in variants:
        p = pkgs.get(v)
        sp = load(res, f"upd-{v}-v2.span")
        run = load(res, f"upd-{v}-v2.run")
        rs = load(res, f"rsync-{v}")
        sp0 = load(res, f"upd-{v}-noop.span")
        rs0 = load(res, f"rsync-{v}-noop")
        if not (p and sp and rs):
            continue
        rdown, rup = rs["bytes_received"], rs["bytes_sent"]
        rtot = rdown + rup
        ddown, dup = sp["bytes_sent"], sp["request_bytes"]
        w(f"| {v} | **dars sync** v1 → v2 | **{mb(ddown)}** | {mb(dup)} | {mb(ddown + dup)} | "
          f"{num(sp['requests'])} requests | {run['wall']:.2f} s | **{ratio(ddown, rdown)}** | {ratio(ddown + dup, rtot)} |")
        w(f"| {v} | **rsync -az** v1 → v2 | **{mb(rdown)}** | {mb(rup)} | {mb(rtot)} | "
          f"{num(rs.get('files_transferred', 0))} of {num(rs.get('files', 0))} files | {rs['wall']:.2f} s | 1.00 | 1.00 |")
        w(f"| {v} | minimum for dars: index + signature + manifest as fetched + dictionary (unless the store has it) + changed lessons' parts + new blobs | "
          f"{mb(p['ideal_update_bytes'])} | | | | | {ratio(p['ideal_update_bytes'], rdown)} | |")
        if sp0 and rs0:
            w(f"| {v} | no change: dars sync v2 again | {mb(sp0['bytes_sent'])} | {mb(sp0['request_bytes'])} | "
              f"{mb(sp0['bytes_sent'] + sp0['request_bytes'])} | {num(sp0['requests'])} requests | "
              f"{load(res, f'upd-{v}-noop.run')['wall']:.2f} s | {ratio(sp0['bytes_sent'], rs0['bytes_received'])} | "
              f"{ratio(sp0['bytes_sent'] + sp0['request_bytes'], rs0['bytes_received'] + rs0['bytes_sent'])} |")
            w(f"| {v} | no change: rsync again | {mb(rs0['bytes_received'])} | {mb(rs0['bytes_sent'])} | "
              f"{mb(rs0['bytes_received'] + rs0['bytes_sent'])} | {num(rs0.get('files_transferred', 0))} files | "
              f"{rs0['wall']:.2f} s | 1.00 | 1.00 |")
        verdicts.append((v, ddown, rdown, ddown + dup, rtot, sp, p, rs))
    w("")
    for v, ddown, rdown, dtot, rtot, sp, p, rs in verdicts:
        ok = "meets" if ddown <= rdown else "MISSES"
        kinds = sp["kinds"]
        parts = ", ".join(f"{k} {mb(kinds[k]['bytes_sent'])} ({kinds[k]['requests']})"
                          for k in ("index", "signature", "manifest", "manifest.zst", "lesson parts", "dictionary", "blobs", "other")
                          if k in kinds)
        w(f"- **{v}**: dars sync moved {mb(ddown)} server → client against rsync's {mb(rdown)}: "
          f"**{ddown / rdown:.2f} × rsync** → {ok} the target (dars ≤ rsync); both directions "
          f"{dtot / rtot:.2f} ×. By kind (bytes sent, requests): {parts}. "
          f"{manifest_note(p, kinds, ddown, load(res, f'manifest-{v}') or {})} "
          f"Changed content: {p['new_blobs']} new blobs, "
          f"{mb(p['new_blob_stored_bytes'])}; dars ÷ that = {ddown / max(1, p['new_blob_stored_bytes']):.1f} × "
          f"(DESIGN.md §7 asks ≤ 1.1 × for what an update moves). "
          f"rsync ({rs.get('compress', '?')} compression, {rs.get('checksum', '?')} checksums): literal data "
          f"{mb(rs.get('literal_data', 0))}, matched {mb(rs.get('matched_data', 0))}, "
          f"file list {mb(rs.get('file_list_size', 0))}.")
        st = load(res, f"upd-{v}-v2.dars")
        if st:
            w(f"  dars said: `{st['line']}`")
            if st["updated"] > len(p["changed_lessons"]):
                w(f"  dars counts {st['updated']} lessons as updated, though the manifests differ in "
                  f"{len(p['changed_lessons'])} of them (same files and hashes in the rest).")
        sp0 = load(res, f"upd-{v}-noop.span")
        rs0 = load(res, f"rsync-{v}-noop")
        if sp0 and rs0:
            w(f"  A sync that finds nothing new still moves {mb(sp0['bytes_sent'])} ({sp0['requests']} requests: "
              f"{', '.join(sorted(sp0['kinds']))}) = {sp0['bytes_sent'] / rs0['bytes_received']:.1f} × rsync's "
              f"no-change run; every scheduled sync (`sync_interval`) pays that.")
        statuses = sp.get("statuses", {})
        if set(statuses) - {"200"}:
            w(f"  HTTP statuses during the update: {statuses}")
    for v in variants:
        vr = load(res, f"upd-{v}-verify.run")
        if vr:
            w(f"- {v}: `dars verify` of the updated store: exit {vr['rc']} ({vr['wall']:.1f} s).")
    w("")

    # ------------------------------------------------------------ 2. throughput
    tpv = open(os.path.join(res, "tp-variant.txt")).read().strip() if os.path.exists(
        os.path.join(res, "tp-variant.txt")) else variants[0]
    pk = pkgs.get(tpv) or load(res, f"pkg-{tpv}")
    pbytes = pk["bytes"]
    fetch = pbytes - (pk["manifest_bytes"] if pk.get("manifest_zst") else 0)
    w(f"### 2. Sync throughput on loopback: a fresh store syncs the whole {tpv} v2 package ({mb(pbytes)}, "
      f"{num(pk['files'])} files{'; a sync fetches ' + mb(fetch) + ' of it: not the JSON manifest, whose zstd copy it takes' if fetch != pbytes else ''})")
    w("")
    w("MB/s = package bytes ÷ wall time of `dars sync` (start to exit: index, signature check, every blob "
      "fetched, decoded, hashed and stored, the final commit). Received = "
      "response bodies: nginx's `$body_bytes_sent` (from nginx) or what dars reports it downloaded (from the "
      "mirror; rounded to 0.1 MB). Peak 5 s (nginx runs of ≥ 10 s) = the reader's highest rate over any "
      "stretch of ≥ 5 s, from nginx's log: dars fetches one file at a time, so the bodies of requests a..b-1 "
      "reached it between the starts of requests a and b. "
      "CPU: dars sync's user+sys; server: nginx (master+worker) or `dars serve`; others: the rest of the "
      "machine's busy CPU over the same interval (other work on the shared machine), in cores. "
      "The mirror is a second dars (`dars serve`) whose store synced the package from nginx.")
    w("")
    w("| source | --max-rate | run | wall | received | MB/s (package) | MB/s (received) | peak 5 s | "
      "dars CPU | dars peak RSS | server CPU | others (cores) |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows: dict[tuple[str, str], list[dict]] = {}

    def row(source: str, cap: str, label: str, idx: str) -> None:
        run = load(res, f"{label}.run")
        if not run:
            return
        sp = load(res, f"{label}.span")
        d = load(res, f"{label}.dars") or {}
        got = sp["body_bytes"] if sp else d.get("downloaded", 0)
        cpu = run["user"] + run["sys"]
        others = max(0.0, run["machine_busy_s"] - cpu - run["server_cpu_s"]) / run["wall"]
        rec = dict(wall=run["wall"], got=got, pkg_rate=pbytes / run["wall"], got_rate=got / run["wall"],
                   peak=sp["reader_peak_5s"] if sp and sp["span_s"] >= 10 else None,
                   peak1=sp["reader_peak_1s"] if sp and sp["span_s"] >= 10 else None,
                   big=sp.get("big_responses", []) if sp else [],
                   span=sp["span_s"] if sp else None)
        rows.setdefault((source, cap), []).append(rec)
        peak = f"{rec['peak'] / 1e6:.1f} MB/s" if rec["peak"] is not None else "-"
        w(f"| {source} | {cap} | {idx} | {run['wall']:.2f} s | {mb(got)} | **{rec['pkg_rate'] / 1e6:.1f}** | "
          f"{rec['got_rate'] / 1e6:.1f} | {peak} | {cpu:.1f} s | {run['maxrss_kb'] / 1024:.0f} MiB | "
          f"{run['server_cpu_s']:.1f} s | {others:.2f} |")

    for i in range(1, meta["runs"] + 1):
        row("nginx", "-", f"tp-nginx-{i}", str(i))
    for i in range(1, meta["runs"] + 1):
        row("dars /mirror/", "-", f"tp-mirror-{i}", str(i))
    for r in meta["rates"]:
        row("nginx", r, f"cap-nginx-{r}", "1")
        row("dars /mirror/", r, f"cap-mirror-{r}", "1")
    w("")
    for source in ("nginx", "dars /mirror/"):
        rs = rows.get((source, "-"), [])
        if rs:
            rates = [x["pkg_rate"] / 1e6 for x in rs]
            w(f"- {source}, no cap: best {max(rates):.1f} MB/s, median {statistics.median(rates):.1f} MB/s "
              f"of package bytes over {len(rs)} runs.")
    for r in meta["rates"]:
        cap = parse_rate(r)
        for source in ("nginx", "dars /mirror/"):
            for x in rows.get((source, r), []):
                avg = x["got_rate"]
                window = x["got"] / x["span"] if x["span"] else avg
                ok = "cap holds" if window <= cap * 1.02 and (x["peak"] is None or x["peak"] <= cap * 1.10) else "cap EXCEEDED"
                extra = ""
                if x["span"]:
                    extra = f"; over nginx's transfer window ({x['span']:.1f} s) {window / 1e6:.2f} MB/s"
                    if x["peak"] is not None:
                        extra += (f"; the reader's peak over ≥ 5 s {x['peak'] / 1e6:.2f} MB/s "
                                  f"({x['peak'] / cap:.2f} × the cap), over ≥ 1 s {x['peak1'] / 1e6:.2f} MB/s")
                    fast = [r for r in x["big"] if r["bytes"] / max(r["seconds"], 0.001) > 1.5 * cap]
                    if fast:
                        bu = max(fast, key=lambda r: r["bytes"])
                        t = f"{bu['seconds']:.3f} s" if bu["seconds"] >= 0.001 else "< 1 ms"
                        extra += (f"; yet on the wire {len(fast)} of the {len(x['big'])} responses of ≥ 1 MB left "
                                  f"nginx faster than 1.5 × the cap, the largest {bu['bytes'] / 1e6:.1f} MB in {t} "
                                  f"(the kernel's socket buffers take them: dars throttles its reads, not the "
                                  f"connection)")
                uncapped = [y["got_rate"] for y in rows.get((source, "-"), [])]
                if uncapped and cap >= max(uncapped):
                    ok = "cap not reached: the sync is slower than the cap even uncapped, so this run does not test it"
                w(f"- --max-rate {r} ({cap / 1e6:g} MB/s) from {source}: measured {avg / 1e6:.2f} MB/s "
                  f"received ÷ wall = {avg / cap:.2f} × the cap{extra} → {ok}.")
    w("")
    w("### Commands")
    w("")
    w("```")
    root = os.getcwd() + "/"
    seen = set()
    for label in ["publish-dict-v1", "publish-dict-v2", "publish-nodict-v1", "publish-nodict-v2",
                  *[f"upd-{v}-{k}" for v in variants for k in ("v1", "v2", "noop")],
                  *[f"upd-{v}-verify" for v in variants],
                  *[f"rsync-{v}" for v in variants], *[f"rsync-{v}-noop" for v in variants],
                  "tp-nginx-1", "tp-mirror-1", *[f"cap-{s}-{r}" for r in meta["rates"] for s in ("nginx", "mirror")]]:
        r = load(res, f"{label}.run")
        if r:
            cmd = " ".join(r["cmd"]).replace(root, "")
            if cmd not in seen:
                seen.add(cmd)
                w(f"{label}: {cmd}")
    sv = os.path.join(res, "servers.txt")
    if os.path.exists(sv):
        for line in open(sv):
            w("server: " + line.strip().replace(root, ""))
    w("```")
    w("")
    w(f"Environment: `DARS_TRUSTED_KEYS='[\"ed25519:...\"]'` (the key from `dars keygen`), `DARS_LOG=warn`. "
      "nginx config, rsyncd.conf, nginx's access log and every command's output: `bench/out/sync-logs"
      f"{'-quick' if meta['mode'] == 'quick' else ''}/`.")
    print("\n".join(out))


def manifest_note(p: dict, kinds: dict, ddown: int, g: dict) -> str:
    if "manifest.zst" in kinds:
        z = kinds["manifest.zst"]["bytes_sent"]
        return (f"The manifest travels as its zstd copy: {mb(z)} (the JSON is {mb(p['manifest_bytes'])}) = "
                f"{z / ddown * 100:.0f} % of dars's bytes.")
    if "manifest" in kinds:
        m = kinds["manifest"]["bytes_sent"]
        return (f"The v2 manifest alone is {mb(m)} = {m / ddown * 100:.0f} % of dars's bytes; it travels as "
                f"uncompressed JSON (dars sends no `Accept-Encoding`), while gzip -6 would make it "
                f"{mb(g.get('gzip6', 0))}, zstd -19 {mb(g.get('zstd19', 0))}.")
    return ""


def ordinal(n: int) -> str:
    if n == 1:
        return ""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def parse_rate(text: str) -> float:
    t = text.strip().removesuffix("/s").rstrip("Bb")
    scale = {"k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6, "g": 1e9, "G": 1e9}.get(t[-1:], 1.0)
    return float(t[:-1] if scale != 1.0 else t) * scale


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Markdown report of bench/packages.sh from the JSON files in bench/out/packages-res[-quick]/.

Usage: packages_report.py RES_DIR
"""

from __future__ import annotations

import json
import os
import sys


def load(res: str, name: str):
    p = os.path.join(res, name + ".json")
    return json.load(open(p)) if os.path.exists(p) else None


def mb(n: float, digits: int = 1) -> str:
    return f"{n / 1e6:,.{digits}f} MB"


def ratio(a: float, b: float, digits: int = 2) -> str:
    return f"{a / b:.{digits}f}" if b else "-"


def io_of(run: dict | None) -> dict:
    return (run or {}).get("io", {})


def main() -> None:
    res = sys.argv[1]
    meta = load(res, "meta") or {}
    out: list[str] = []
    w = out.append

    w(f"## dars packages benchmark ({meta.get('mode', '?')}, {meta.get('date', '?')})")
    w("")
    w(f"- command: `{meta.get('command', '?')}`")
    w(f"- machine: {meta.get('nproc', '?')} CPUs (nproc), {meta.get('cpu', '?')}, {meta.get('mem_mib', '?')} MiB RAM, "
      f"Linux {meta.get('kernel', '?')}")
    dirty = meta.get("dirty", 0)
    w(f"- dars: {meta.get('dars_version', '?')}, git commit {meta.get('commit', '?')}"
      + (f" + uncommitted changes in {dirty} file(s) of src/ or Cargo.*" if dirty else "")
      + " (release build)")
    w(f"- corpus: `{meta.get('corpus', '?')}`")
    notes_path = os.path.join(res, "load-notes.txt")
    if os.path.exists(notes_path):
        for line in open(notes_path):
            w(f"- disturbed: {line.strip()}")
    w("")

    # ------------------------------------------------------------ 1. sizes
    sizes = load(res, "sizes")
    pd, pn = load(res, "pkg-dict"), load(res, "pkg-nodict")
    pubd, pubn = load(res, "publish-dict"), load(res, "publish-nodict")
    if sizes and pd and pn:
        raw = sizes["raw"]
        pkg = pd["bytes"]
        w("### 1. Package size")
        w("")
        w("| form | bytes | size | ÷ raw | ÷ dars package |")
        w("|---|---:|---:|---:|---:|")

        def row(name, n):
            w(f"| {name} | {n:,} | {mb(n)} | {ratio(n, raw, 3)} | {ratio(n, pkg)} |")

        row(f"raw lesson files ({sizes['files']:,} files)", raw)
        row(f"raw, distinct contents only ({sizes['distinct_files']:,})", sizes["distinct_raw"])
        row("`gzip -9` of every file", sizes["gzip9"])
        row("`gzip -9` of every file, raw where not smaller", sizes["gzip9_min"])
        row("`zstd -19` of every file", sizes["zstd19"])
        row("`zstd -19` of every file, raw where not smaller", sizes["zstd19_min"])
        row("`zstd -19` of every distinct content, raw where not smaller", sizes["zstd19_min_distinct"])
        row(f"**dars package** (dictionary {mb(pd['dict_bytes'], 2)}, manifest {mb(pd['manifest_bytes'], 2)}, "
            f"{pd['blob_files']:,} blob files)", pkg)
        row(f"dars package `--no-dictionary` ({pn['blob_files']:,} blob files)", pn["bytes"])
        w("")
        if pubd and pubn:
            w(f"Publish time (zstd -19 on {meta.get('nproc', '?')} CPUs): with dictionary {pubd['wall']:.1f} s "
              f"(CPU {pubd['user'] + pubd['sys']:.1f} s, {raw / 1e6 / pubd['wall']:.1f} MB/s of lesson files), "
              f"`--no-dictionary` {pubn['wall']:.1f} s (CPU {pubn['user'] + pubn['sys']:.1f} s, "
              f"{raw / 1e6 / pubn['wall']:.1f} MB/s).")
            w("")
        def cmp(x, y):
            return f"{abs(1 - x / y):.1%} {'smaller' if x < y else 'LARGER'} than"

        w(f"The dictionary saves {1 - pkg / pn['bytes']:.1%} of the package against `--no-dictionary`. The package is "
          f"{cmp(pkg, sizes['gzip9_min'])} `gzip -9` of every file and {cmp(pkg, sizes['zstd19_min'])} `zstd -19` "
          f"of every file (both raw where not smaller); without a dictionary it is {cmp(pn['bytes'], sizes['zstd19_min_distinct'])} "
          f"`zstd -19` of every distinct content, which is what it should roughly equal.")
        w("")
        bd = load(res, "breakdown-nodict")
        if bd:
            w("What the `--no-dictionary` package stores, by media type (distinct contents; the media type is the one in "
              "the manifest), against `zstd -19` of the same files:")
            w("")
            w("| media type | encoding in package | files | raw | in package | `zstd -19` (raw where not smaller) | package − zstd -19 |")
            w("|---|---|---:|---:|---:|---:|---:|")
            shown = sorted(bd, key=lambda r: -abs(r["stored"] - r["zstd19_min"]))[:10]
            for r in sorted(shown, key=lambda r: -r["raw"]):
                w(f"| {r['media_type']} | {r['encoding']} | {r['files']:,} | {mb(r['raw'])} | {mb(r['stored'])} | "
                  f"{mb(r['zstd19_min'])} | {(r['stored'] - r['zstd19_min']) / 1e6:+,.1f} MB |")
            rest = [r for r in bd if r not in shown]
            if rest:
                w(f"| ({len(rest)} other kinds) | | {sum(r['files'] for r in rest):,} | {mb(sum(r['raw'] for r in rest))} | "
                  f"{mb(sum(r['stored'] for r in rest))} | {mb(sum(r['zstd19_min'] for r in rest))} | "
                  f"{sum(r['stored'] - r['zstd19_min'] for r in rest) / 1e6:+,.1f} MB |")
            w("")

    # ------------------------------------------------------------ 2. import
    modes = meta.get("cache_modes", ["cold"])
    runs = meta.get("import_runs", 2)
    if pd and load(res, f"import-{modes[0]}-1"):
        pkg = pd["bytes"]
        w(f"### 2. Import speed: `dars import PKG` vs `cp -r PKG` ({mb(pkg)} package, fresh store / target each run)")
        w("")
        w("| cache | run | dars import | dars MB/s | dars CPU (cores busy) | dars read_bytes | dars write_bytes "
          "| + gzip variants (dars serve) | import + variants MB/s | cp -r | cp MB/s "
          "| cp -r + sync | cp+sync MB/s | dars ÷ cp | dars ÷ (cp+sync) | (import + variants) ÷ (cp+sync) |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        best = {}
        for mode in modes:
            for i in range(1, runs + 1):
                d, c, s = load(res, f"import-{mode}-{i}"), load(res, f"cp-{mode}-{i}"), load(res, f"sync-{mode}-{i}")
                if not (d and c and s):
                    continue
                dm, cm, csm = pkg / 1e6 / d["wall"], pkg / 1e6 / c["wall"], pkg / 1e6 / (c["wall"] + s["wall"])
                v = load(res, f"variants-{mode}-{i}") or {"wall": 0.0, "io": {}}
                vm = pkg / 1e6 / (d["wall"] + v["wall"])
                w(f"| {mode} | {i} | {d['wall']:.2f} s | {dm:.1f} | {d['user'] + d['sys']:.1f} s ({(d['user'] + d['sys']) / d['wall']:.2f}) | "
                  f"{mb(io_of(d).get('read_bytes', 0))} | {mb(io_of(d).get('write_bytes', 0))} | "
                  f"{v['wall']:.2f} s ({v.get('pending_before', 0):,} files, {mb(v['io'].get('write_bytes', 0))} written) | {vm:.1f} | "
                  f"{c['wall']:.2f} s | "
                  f"{cm:.1f} | {c['wall'] + s['wall']:.2f} s | {csm:.1f} | {dm / cm:.2f} | {dm / csm:.2f} | {vm / csm:.2f} |")
                b = best.setdefault(mode, [0, 0, 0])
                best[mode] = [max(b[0], dm), max(b[1], cm), max(b[2], csm)]
        w("")
        for mode, (dm, cm, csm) in best.items():
            verdict = lambda r: "meets" if r >= 0.5 else "MISSES"
            cpu = min((load(res, f"import-{mode}-{i}") or {"user": 1e9, "sys": 0})["user"]
                      + (load(res, f"import-{mode}-{i}") or {"sys": 0})["sys"] for i in range(1, runs + 1))
            w(f"- {mode} cache, best runs: dars {dm:.1f} MB/s, cp -r {cm:.1f} MB/s, cp -r + sync {csm:.1f} MB/s: "
              f"dars = **{dm / cm:.2f} × cp -r** ({verdict(dm / cm)} the ≥ 0.5 target), "
              f"{dm / csm:.2f} × cp -r + sync ({verdict(dm / csm)} it). dars used {cpu:.1f} s of CPU "
              f"(package bytes / CPU seconds = {pkg / 1e6 / cpu:.1f} MB/s; with several threads wall time can be lower).")
        st = load(res, "store-full")
        last = load(res, f"import-{modes[-1]}-{runs}")
        if st:
            w(f"- store after import: {mb(st['db_bytes'])} ({ratio(st['db_bytes'], pkg)} × the package: text is kept "
              f"as zstd plus a gzip variant); {st['blobs']:,} blobs, page size {st['page_size']}.")
        if last:
            io = io_of(last)
            w(f"- last dars import: rchar {mb(io.get('rchar', 0))}, wchar {mb(io.get('wchar', 0))}, write_bytes "
              f"{mb(io.get('write_bytes', 0))} = {ratio(io.get('write_bytes', 0), st['db_bytes'] if st else 0)} × the final "
              f"database (WAL, then checkpoint into the database), peak RSS {last['maxrss_kb'] / 1024:.0f} MB, "
              f"CPU {last['user']:.1f} s user + {last['sys']:.1f} s sys over {last['wall']:.1f} s wall "
              f"({(last['user'] + last['sys']) / last['wall']:.2f} cores busy), {last.get('peak_threads', '?')} threads.")
        chk = load(res, "import-check")
        if chk and last:
            w(f"- `dars import --check PKG` (verify only: nothing is stored; warm cache): {chk['wall']:.2f} s "
              f"({pkg / 1e6 / chk['wall']:.1f} MB/s), CPU {chk['user'] + chk['sys']:.1f} s = "
              f"{(chk['user'] + chk['sys']) / (last['user'] + last['sys']):.0%} of a warm import's CPU time.")
        perf_path = os.path.join(res, "perf-import.txt")
        if os.path.exists(perf_path) and os.path.getsize(perf_path):
            w("- `perf record` of a warm import, top symbols (self time):")
            w("")
            w("```")
            for line in open(perf_path):
                w(line.rstrip())
            w("```")
        perf_path = os.path.join(res, "perf-check.txt")
        if os.path.exists(perf_path) and os.path.getsize(perf_path):
            w("- `perf record` of `dars import --check PKG`, top symbols (self time):")
            w("")
            w("```")
            for line in open(perf_path):
                w(line.rstrip())
            w("```")
        w("")

    # ------------------------------------------------------------ 3. update
    diff, split, v2 = load(res, "diff"), load(res, "split"), load(res, "v2")
    a, b = load(res, "upd-a"), load(res, "upd-b")
    if diff and a:
        nb = diff["changed_bytes"]
        cb = diff.get("changed_lesson_bytes", nb)
        w("### 3. Update cost: import v2 over v1 (1 % of lessons changed)")
        w("")
        if split and v2:
            edits = sum(c["edited"] for c in v2["changes"])
            w(f"Corpus re-cut into **{split['lessons']} lessons** (from {split['source_lessons']}: every lesson split into "
              f"stretches of about {mb(split['target_bytes'])} of consecutive files) and published as v1 (`--seq 1`). "
              f"v2 (`--seq 2`) changes **{v2['changed_lessons']} of {v2['lessons']} lessons** "
              f"({', '.join(c['lesson'] for c in v2['changes'])}): in each, every {v2['text_every']}"
              f"{'nd' if v2['text_every'] == 2 else 'th'} text file gets a changed line ({edits} file{'s' if edits != 1 else ''} in all), one new "
              f"HTML page is added and one picture is replaced. Both published with a dictionary (the default)"
              + ("; v2's dictionary differs from v1's" if diff.get("dict_v1") != diff.get("dict_v2") else
                 "; the dictionary is the same in both") + ".")
            w("")
        w(f"**Changed bytes** = the changed lessons' blobs as they are in v2's package (stored size in v2's manifest of "
          f"the {diff.get('changed_lesson_blobs', 0)} distinct contents of the {len(diff['changed_lessons'])} lessons whose "
          f"files differ from v1): **{mb(cb, 2)}** ({cb:,} bytes, {cb / diff['v2_stored_bytes']:.2%} of v2's "
          f"{mb(diff['v2_stored_bytes'])} of blobs). Of those, the {diff['new_blobs']} blobs whose hash is not in v1 "
          f"(**new-blob bytes**, the least any update must bring) weigh {mb(nb, 2)} ({nb:,} bytes; "
          f"{mb(diff['changed_raw_bytes'], 2)} raw). Ratios are given against both.")
        w("")
        w("| update import of v2 into a store holding v1 | bytes | × changed bytes | × new-blob bytes |")
        w("|---|---:|---:|---:|")

        def r(name, n, bold=False):
            s = f"**{mb(n, 2)}**" if bold else mb(n, 2)
            w(f"| {name} | {s} | {ratio(n, cb)} | {ratio(n, nb)} |")

        r("changed bytes (changed lessons' blobs in v2's package)", cb)
        r("new-blob bytes", nb)
        if "store_payload" in diff:
            r(f"payload the store keeps for them: zstd {mb(diff['store_new_zstd'], 2)} + gzip variant "
              f"{mb(diff['store_new_gzip'], 2)} + raw {mb(diff['store_new_raw'], 2)}", diff["store_payload"])
        sa0 = load(res, "upd-store-a")
        kept = f"; the store keeps {mb(sa0['manifests'][1], 2)} of it in its `manifests` table" if sa0 else ""
        r("v2's signed root (JSON: each lesson by the hash of its part; read first, whole)"
          if diff.get("v2_root") else f"v2's signed manifest (JSON in the package{kept})", diff["v2_manifest_bytes"])
        if diff.get("v2_root"):
            r(f"the parts of the {len(diff['changed_lessons'])} changed lessons in v2's package (the only parts an "
              f"importer holding v1 reads)", diff.get("changed_part_bytes", 0))
        ia = io_of(a)
        av = load(res, "upd-a-variants") or {"io": {}, "wall": 0.0}
        e = load(res, "upd-e")
        if e:
            idle = min(x["idle"] for x in e["runs"])
            r(f"E. **written to the disk** (sectors the block device `{e['device']}` wrote during the import and "
              f"the `sync` after it, filesystem journal included, less an idle stretch as long: least of "
              f"{len(e['runs'])} runs; idle wrote {mb(idle, 2)})", e["written"], True)
        r("A. normal import: **write_bytes** (disk writes caused by dars: WAL + checkpoints)", ia.get("write_bytes", 0), True)
        r("A. normal import: **read_bytes** + write_bytes", ia.get("read_bytes", 0) + ia.get("write_bytes", 0), True)
        r(f"A'. then dars serve makes the {av.get('pending_before', 0)} new gzip variants: write_bytes "
          f"({av['wall']:.2f} s, server start included)", av["io"].get("write_bytes", 0))
        r("A'. dars serve: read_bytes", av["io"].get("read_bytes", 0))
        r("A + A': write_bytes", ia.get("write_bytes", 0) + av["io"].get("write_bytes", 0))
        r("A. normal import: wchar (bytes passed to write/pwrite)", ia.get("wchar", 0))
        r("A. normal import: cancelled_write_bytes (dirty pages dropped by truncate/delete)", ia.get("cancelled_write_bytes", 0))
        r("A. normal import: read_bytes (from disk; package and store evicted first)", ia.get("read_bytes", 0))
        r("A. normal import: rchar (bytes from read/pread, page cache or not)", ia.get("rchar", 0))
        if b:
            ib = io_of(b)
            hold = b.get("hold", {})
            ck = hold.get("checkpoint_io", {})
            r("B. checkpoint held off by a reader: dars write_bytes (WAL only)", ib.get("write_bytes", 0))
            r("B. checkpoint held off: dars wchar", ib.get("wchar", 0))
            r(f"B. WAL file left behind ({hold.get('wal_bytes_before', 0):,} bytes)", hold.get("wal_bytes_before", 0))
            r(f"B. the deferred `PRAGMA wal_checkpoint(TRUNCATE)` alone: write_bytes "
              f"({hold.get('checkpoint_wall', 0):.2f} s)", ck.get("write_bytes", 0))
            r("B. the deferred checkpoint alone: wchar", ck.get("wchar", 0))
            r("B. dars + checkpoint: write_bytes", ib.get("write_bytes", 0) + ck.get("write_bytes", 0))
        d = load(res, "upd-d")
        if d:
            idd = io_of(d)
            r("D. store warm (as dars serve keeps it), package evicted: **read_bytes**", idd.get("read_bytes", 0), True)
            r("D. store warm: wchar (its write_bytes, not comparable, in the notes below)", idd.get("wchar", 0))
        st = load(res, "upd-strace")
        if st:
            wr, rd = st.get("write", {}), st.get("read", {})
            for k in sorted(wr):
                r(f"C. (strace) written to {k}", wr[k])
            for k in sorted(rd):
                r(f"C. (strace) read from {k}", rd[k])
            fs = st.get("fsync", {})
            if fs:
                w(f"| C. (strace) fsync/fdatasync calls | {', '.join(f'{k}: {v}' for k, v in sorted(fs.items()))} | |")
        w("")
        target = 1.1 * cb
        # What reached the disk (E) when measured; else the kernel's per-process count, which
        # counts a whole folio when one 4 KB page of it is dirtied, and so overstates.
        wb = e["written"] if e else ia.get("write_bytes", 0)
        rb = ia.get("read_bytes", 0)
        wv = wb + av["io"].get("write_bytes", 0)
        if e:
            w(f"- **Written** (the verdict below is on E, what reached the disk): {mb(wb, 2)}; the bytes dars passed "
              f"to write (wchar) {mb(ia.get('wchar', 0), 2)}; the kernel's write_bytes for the process "
              f"{mb(ia.get('write_bytes', 0), 2)}, more than either because it counts a whole folio of the page "
              f"cache when one 4 KB page of it is first dirtied.")
        w(f"- **Target** (bytes read and written ≤ 1.1 × changed bytes = {mb(target, 2)} each): the import read "
          f"{mb(rb, 2)} = **{ratio(rb, cb)} ×** ({'meets' if rb <= target else 'MISSES'}) and wrote {mb(wb, 2)} = "
          f"**{ratio(wb, cb)} ×** ({'meets' if wb <= target else 'MISSES'}); with the gzip variants dars serve makes "
          f"afterwards, {mb(wv, 2)} written = **{ratio(wv, cb)} ×** ({'meets' if wv <= target else 'MISSES'}). "
          f"Against the new-blob bytes alone: read {ratio(rb, nb)} ×, written {ratio(wb, nb)} × "
          f"({ratio(wv, nb)} × with the variants)"
          + (f"; with the checkpoint held off dars alone wrote {ratio(io_of(b).get('write_bytes', 0), cb)} ×" if b else "")
          + ".")
        if st:
            asked = sum(st.get("read", {}).get(k, 0) for k in ("package", "store database"))
            w(f"- **Bytes dars asks for** (C, strace: read from the package and the store's database; the WAL it "
              f"reads back is the pages it has just written, in the page cache): {mb(asked, 2)} = **{ratio(asked, cb)} ×** "
              f"({'meets' if asked <= target else 'MISSES'}). Cold `read_bytes` (A) count the kernel's readahead on top: "
              f"{meta.get('read_ahead_kb', 'unknown')} KB on this machine's disk "
              f"(`/sys/block/*/queue/read_ahead_kb`; 128 KB is the usual default).")
        if d:
            dr, dw = io_of(d).get("read_bytes", 0), io_of(d).get("write_bytes", 0)
            w(f"- **Store warm** (D): read {mb(dr, 2)} from disk = **{ratio(dr, cb)} ×** "
              f"({'meets' if dr <= target else 'MISSES'}). Its write_bytes ({mb(dw, 2)}) are not comparable: the store "
              f"was warmed by reading its files whole, which fills the page cache with large folios, and the kernel "
              f"counts a whole folio when a 4 KB page of it is first dirtied (its wchar, the bytes written, is the "
              f"same as A's).")
        w(f"- update import A: {a['wall']:.2f} s wall, CPU {a['user']:.2f} s user + {a['sys']:.2f} s sys, peak RSS "
          f"{a['maxrss_kb'] / 1024:.0f} MB; B: {b['wall']:.2f} s." if b else
          f"- update import A: {a['wall']:.2f} s wall.")
        said = [l for l in a.get("tail", []) if l.startswith("imported:")]
        if said:
            w(f"- dars said: `{said[-1]}`")
        s1, sa = load(res, "upd-store-v1"), load(res, "upd-store-a")
        import re as _re
        m = _re.search(r"(\d+) new, (\d+) updated, (\d+) unchanged", said[-1]) if said else None
        if m:
            n_upd, n_changed = int(m.group(1)) + int(m.group(2)), len(diff["changed_lessons"])
            if n_upd > n_changed:
                w(f"- dars rewrote {n_upd} lessons (their `lessons` and `files` rows) where {n_changed} changed.")
            else:
                w(f"- dars rewrote only the {n_upd} changed lessons; the {m.group(3)} unchanged ones kept their rows.")
        if s1 and sa:
            w(f"- store database: {mb(s1['db_bytes'])} after v1, {mb(sa['db_bytes'])} after v2 "
              f"(+{mb(sa['db_bytes'] - s1['db_bytes'], 2)}, {sa['freelist']} free pages); manifests kept: "
              f"{sa['manifests'][0]} ({mb(sa['manifests'][1], 2)}).")
        w(f"- a mirror copying v2's package folder next to v1's (rsync/`cp -u` style, by file name and bytes) would move "
          f"{diff['mirror_files']:,} of {diff['v2_package_files']:,} files, {mb(diff['mirror_bytes'], 2)} "
          f"({ratio(diff['mirror_bytes'], cb)} × changed bytes)"
          + (": the new dictionary changes every text blob's bytes, though not their hashes."
             if diff.get("dict_v1") != diff.get("dict_v2") else "."))
        w("- /proc/PID/io: `rchar`/`wchar` count every byte passed to read/write system calls, including reads "
          "served from the page cache; `read_bytes`/`write_bytes` count what reaches (or would reach) the block "
          "device, at page granularity when a page is first dirtied. Cached pages hide reads, so the package and "
          "the store are evicted (posix_fadvise DONTNEED) before the update. The values are read from the exited "
          "process before it is reaped (no sample is lost); they include SQLite's WAL writes, its checkpoints "
          "(every 1000 pages by default, and on close) and the fsyncs' data.")
        w("")
    print("\n".join(out))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Helpers for bench/packages.sh (the dars package benchmark). See bench/PACKAGES.md.

Subcommands (each prints or writes JSON):

  sizes     per-file `gzip -9` and `zstd -19` sizes of a corpus (parallel, cached)
  pkgsize   bytes and files of a package folder
  split     a corpus re-cut into >= N smaller lessons (hard links, new lesson.toml)
  v2        a copy of a split corpus (hard links) where ~1 % of the lessons change
  diff      "changed bytes" between two published packages, and what the store holds of them
  run       run a command, sampling /proc/PID/io every 50 ms; final values are read from
            the zombie before it is reaped, so nothing after the last sample is lost
  evict     drop a folder's files from the page cache (posix_fadvise DONTNEED)
  strace    sum read/write bytes per file class from an `strace -f -y` log
  sqlite    page counts of a store (page size, pages, free pages, WAL size)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

SYSTEM_FILES = {"Thumbs.db", "desktop.ini"}


def log(*a):
    print("[packages]", *a, file=sys.stderr, flush=True)


def write_json(path: str | None, data) -> None:
    text = json.dumps(data, indent=1, sort_keys=True)
    if path:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    else:
        print(text)


# ------------------------------------------------------------------ corpus walking
def lesson_dirs(root: str) -> list[str]:
    out = []
    for name in sorted(os.listdir(root)):
        p = os.path.join(root, name)
        if name.startswith(".") or not os.path.isdir(p):
            continue
        if os.path.isfile(os.path.join(p, "lesson.toml")):
            out.append(p)
    return out


def lesson_files(lesson: str) -> list[str]:
    """The files dars would take from a lesson folder, as paths relative to it (sorted)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(lesson, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = os.path.relpath(dirpath, lesson)
        for name in sorted(filenames):
            if name.startswith(".") or name in SYSTEM_FILES:
                continue
            if rel_dir == "." and name == "lesson.toml":
                continue
            full = os.path.join(dirpath, name)
            if not os.path.isfile(full):
                continue
            out.append(name if rel_dir == "." else rel_dir + "/" + name)
    return sorted(out)


def corpus_files(root: str) -> list[tuple[str, str]]:
    """(lesson dir, relative path) of every file of every lesson."""
    out = []
    for lesson in lesson_dirs(root):
        out.extend((lesson, rel) for rel in lesson_files(lesson))
    return out


def read_toml(path: str) -> dict:
    try:
        import tomllib

        with open(path, "rb") as f:
            return tomllib.load(f)
    except ModuleNotFoundError:
        meta = {}
        for line in open(path, encoding="utf-8"):
            m = re.match(r'\s*(\w+)\s*=\s*(.*)$', line)
            if m:
                meta[m.group(1)] = json.loads(m.group(2))
        return meta


def toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


# ------------------------------------------------------------------ sizes
def compressed_len(cmd: list[str], path: str) -> int:
    with open(path, "rb") as f:
        r = subprocess.run(cmd, stdin=f, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    return len(r.stdout)


def cmd_sizes(a) -> None:
    """Every file compressed on its own, the way a package stores them (one blob a file)."""
    files = corpus_files(a.corpus)
    cache: dict[tuple, tuple[int, int]] = {}
    if a.cache and os.path.exists(a.cache):
        for line in open(a.cache, encoding="utf-8", errors="surrogateescape"):
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 5:
                key, size, mtime, gz, zs = parts
                cache[(key, int(size), int(mtime))] = (int(gz), int(zs))
    gzip_cmd = ["gzip", "-9", "-c"]
    zstd_cmd = ["zstd", "-19", "-q", "-c"]
    jobs = []
    for lesson, rel in files:
        full = os.path.join(lesson, rel)
        st = os.stat(full)
        key = os.path.relpath(full, a.corpus)
        jobs.append((full, key, st.st_size, st.st_mtime_ns))
    todo = [j for j in jobs if (j[1], j[2], j[3]) not in cache]
    if todo:
        log(f"compressing {len(todo)} of {len(jobs)} files with gzip -9 and zstd -19 ({a.jobs} at a time; cached in {a.cache})")
        started = time.time()

        def work(job):
            full, key, size, mtime = job
            # gzip -9 reads from stdin here (no name in the header: the package does not keep one either)
            return (key, size, mtime), (compressed_len(gzip_cmd, full), compressed_len(zstd_cmd, full))

        done = 0
        with ThreadPoolExecutor(a.jobs) as pool, open(a.cache, "a", encoding="utf-8", errors="surrogateescape") if a.cache else open(os.devnull, "w") as out:
            for k, v in pool.map(work, todo, chunksize=16):
                cache[k] = v
                out.write(f"{k[0]}\t{k[1]}\t{k[2]}\t{v[0]}\t{v[1]}\n")
                done += 1
                if done % 2000 == 0:
                    log(f"  {done}/{len(todo)} files, {time.time() - started:.0f} s")
        log(f"compressed in {time.time() - started:.0f} s")
    res = dict(files=len(jobs), raw=0, gzip9=0, gzip9_min=0, zstd19=0, zstd19_min=0,
               distinct_files=0, distinct_raw=0, zstd19_min_distinct=0, gzip9_min_distinct=0)
    seen = set()
    for full, key, size, mtime in jobs:
        gz, zs = cache[(key, size, mtime)]
        res["raw"] += size
        res["gzip9"] += gz
        res["zstd19"] += zs
        res["gzip9_min"] += min(gz, size)
        res["zstd19_min"] += min(zs, size)
        if a.distinct:
            h = hash_file(full)
            if h in seen:
                continue
            seen.add(h)
            res["distinct_files"] += 1
            res["distinct_raw"] += size
            res["zstd19_min_distinct"] += min(zs, size)
            res["gzip9_min_distinct"] += min(gz, size)
    write_json(a.out, res)


def hash_file(path: str) -> str:
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


# ------------------------------------------------------------------ what a package stores, by kind
def cmd_breakdown(a) -> None:
    """Per media type and encoding: files, raw bytes, bytes in the package, and what
    `zstd -19` / `gzip -9` of each file (raw where not smaller) would take."""
    cache: dict[str, tuple[int, int, int]] = {}
    for line in open(a.cache, encoding="utf-8", errors="surrogateescape"):
        parts = line.rstrip("\n").split("\t")
        if len(parts) == 5:
            cache[parts[0]] = (int(parts[1]), int(parts[3]), int(parts[4]))
    folder = {read_toml(os.path.join(d, "lesson.toml")).get("id"): os.path.basename(d) for d in lesson_dirs(a.corpus)}
    m = load_manifest(a.pkg)
    rows: dict[tuple[str, str], list[int]] = {}
    seen = set()
    for lesson in m["lessons"]:
        for f in lesson["files"]:
            if f["hash"] in seen:
                continue
            seen.add(f["hash"])
            key = f"{folder.get(lesson['id'], lesson['id'])}/{f['path']}"
            size, gz, zs = cache.get(key, (f["size"], f["size"], f["size"]))
            r = rows.setdefault((f["media_type"].split(";")[0], f["encoding"]), [0, 0, 0, 0, 0])
            r[0] += 1
            r[1] += f["size"]
            r[2] += f["stored_size"]
            r[3] += min(zs, size)
            r[4] += min(gz, size)
    out = [dict(media_type=k[0], encoding=k[1], files=v[0], raw=v[1], stored=v[2], zstd19_min=v[3], gzip9_min=v[4])
           for k, v in sorted(rows.items(), key=lambda kv: -kv[1][1])]
    write_json(a.out, out)


# ------------------------------------------------------------------ package size
def dir_bytes(path: str) -> tuple[int, int]:
    total = n = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            total += os.lstat(os.path.join(dirpath, name)).st_size
            n += 1
    return total, n


def cmd_pkgsize(a) -> None:
    total, n = dir_bytes(a.dir)
    blobs, nb = dir_bytes(os.path.join(a.dir, "blobs")) if os.path.isdir(os.path.join(a.dir, "blobs")) else (0, 0)
    dicts, _ = dir_bytes(os.path.join(a.dir, "dict")) if os.path.isdir(os.path.join(a.dir, "dict")) else (0, 0)
    man = sum(dir_bytes(os.path.join(a.dir, d))[0] for d in ("manifests", "lessons") if os.path.isdir(os.path.join(a.dir, d)))
    write_json(a.out, dict(bytes=total, files=n, blob_bytes=blobs, blob_files=nb, dict_bytes=dicts, manifest_bytes=man))


# ------------------------------------------------------------------ split corpus
def cmd_split(a) -> None:
    """Re-cut every lesson into parts of about total/N bytes (consecutive files in path
    order, so a part is a stretch of one book), so the corpus has >= N lessons."""
    lessons = lesson_dirs(a.corpus)
    plan = [(l, lesson_files(l)) for l in lessons]
    sizes = {(l, r): os.path.getsize(os.path.join(l, r)) for l, files in plan for r in files}
    total = sum(sizes.values())
    target = max(1, total // a.lessons)
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    os.makedirs(a.out)
    made = []
    for lesson, files in plan:
        meta = read_toml(os.path.join(lesson, "lesson.toml"))
        groups, cur, cur_bytes = [], [], 0
        for rel in files:
            s = sizes[(lesson, rel)]
            if cur and cur_bytes + s > target:
                groups.append(cur)
                cur, cur_bytes = [], 0
            cur.append(rel)
            cur_bytes += s
        if cur:
            groups.append(cur)
        for k, group in enumerate(groups, 1):
            lid = f"{meta['id']}-p{k:03d}" if len(groups) > 1 else meta["id"]
            dest = os.path.join(a.out, lid)
            os.makedirs(dest)
            for rel in group:
                d = os.path.join(dest, rel)
                os.makedirs(os.path.dirname(d), exist_ok=True)
                os.link(os.path.realpath(os.path.join(lesson, rel)), d)
            entry = meta.get("entry", "index.html")
            if entry not in group:
                html = [r for r in group if r.lower().endswith((".html", ".htm"))]
                entry = html[0] if html else group[0]
            title = meta.get("title", lid) + (f" (part {k} of {len(groups)})" if len(groups) > 1 else "")
            with open(os.path.join(dest, "lesson.toml"), "w", encoding="utf-8") as f:
                f.write(f"id = {toml_str(lid)}\ntitle = {toml_str(title)}\n")
                f.write(f"language = {toml_str(meta.get('language', 'en'))}\ngrade = {int(meta.get('grade', 0))}\n")
                f.write(f"subject = {toml_str(meta.get('subject', 'General'))}\n")
                f.write(f"summary = {toml_str(meta.get('summary', ''))}\nentry = {toml_str(entry)}\n")
            made.append(dict(id=lid, files=len(group), bytes=sum(sizes[(lesson, r)] for r in group)))
    write_json(a.json, dict(lessons=len(made), source_lessons=len(lessons), files=len(sizes), bytes=total,
                            target_bytes=target, max_lesson_bytes=max(m["bytes"] for m in made)))
    log(f"split {len(lessons)} lessons into {len(made)} (about {target / 1e6:.1f} MB each) in {a.out}")


# ------------------------------------------------------------------ v2 of a split corpus
TEXT_EXT = (".html", ".htm", ".css", ".js", ".txt", ".svg", ".xml", ".json")


def edited(rel: str, data: bytes, n: int) -> bytes:
    """A small, realistic edit: a changed line near the end of a text file."""
    mark = f"dars bench v2: edited line {n}"
    low = rel.lower()
    if low.endswith((".html", ".htm", ".svg", ".xml")):
        tag = f"<!-- {mark} -->\n".encode()
        i = data.lower().rfind(b"</body>")
        return data[:i] + tag + data[i:] if i >= 0 else data + b"\n" + tag
    if low.endswith((".css",)):
        return data + f"\n/* {mark} */\n".encode()
    if low.endswith((".js",)):
        return data + f"\n// {mark}\n".encode()
    if low.endswith((".json",)):
        return data + b"\n"
    return data + f"\n{mark}\n".encode()


def replace_file(path: str, data: bytes) -> None:
    """Writes through a new inode: the v1 file (a hard link into the corpus) is untouched."""
    tmp = path + ".v2tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def cmd_v2(a) -> None:
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    # cp -al: a hard-linked tree; every changed file is then written as a new inode
    subprocess.run(["cp", "-al", a.src, a.out], check=True)
    lessons = [os.path.basename(p) for p in lesson_dirs(a.out)]
    k = max(1, round(len(lessons) * a.pct / 100))
    picks = [lessons[int((i + 0.5) * len(lessons) / k)] for i in range(k)]
    changes = []
    for lid in picks:
        d = os.path.join(a.out, lid)
        files = lesson_files(d)
        texts = [r for r in files if r.lower().endswith(TEXT_EXT)]
        # every `text_every`-th text file gets a changed line
        edit = texts[:: a.text_every]
        before = sum(os.path.getsize(os.path.join(d, r)) for r in files)
        for n, rel in enumerate(edit):
            p = os.path.join(d, rel)
            replace_file(p, edited(rel, open(p, "rb").read(), n))
        # one new page (a copy of the entry with a new heading)
        meta = read_toml(os.path.join(d, "lesson.toml"))
        entry = os.path.join(d, meta.get("entry", "index.html"))
        page = open(entry, "rb").read() if os.path.isfile(entry) else b"<html><body></body></html>"
        page = page.replace(b"<body", b"<!-- dars bench v2: new page -->\n<body", 1)
        new_rel = "dars-bench-v2-new.html"
        replace_file(os.path.join(d, new_rel), page)
        # one replaced picture (16 bytes appended: decoders ignore trailing data)
        pics = [r for r in files if r.lower().endswith((".png", ".jpg", ".jpeg", ".gif"))]
        pic = None
        if pics:
            pic = pics[len(pics) // 2]
            p = os.path.join(d, pic)
            replace_file(p, open(p, "rb").read() + b"dars-bench-v2\x00\x00\x00")
        after = sum(os.path.getsize(os.path.join(d, r)) for r in lesson_files(d))
        changes.append(dict(lesson=lid, files=len(files), text_files=len(texts), edited=len(edit),
                            added=[new_rel], picture=pic, bytes_before=before, bytes_after=after))
    write_json(a.json, dict(lessons=len(lessons), changed_lessons=len(picks), pct=a.pct,
                            text_every=a.text_every, changes=changes))
    log(f"v2: {len(picks)} of {len(lessons)} lessons changed: {', '.join(picks)}")


# ------------------------------------------------------------------ changed bytes
def load_manifest(pkg: str) -> dict:
    """A package's (first) signed manifest with every lesson in full."""
    index = json.load(open(os.path.join(pkg, "package.json")))
    return read_manifest(pkg, index["manifests"][0]["manifest"])


def read_manifest(pkg: str, rel: str) -> dict:
    """The signed manifest at `rel` in package `pkg` with every lesson in full: a root's
    (dars-manifest/2) lessons are read from their parts (lessons/<2 hex>/<hash>, zstd of the
    lesson's JSON). Also used by sync_tool.py."""
    m = json.load(open(os.path.join(pkg, rel)))
    if m.get("format") == "dars-manifest/2":
        lessons = []
        for l in m["lessons"]:
            part = os.path.join(pkg, "lessons", l["part"][:2], l["part"])
            lessons.append(json.loads(subprocess.run(["zstd", "-dc", part], check=True, capture_output=True).stdout))
        m["lessons"] = lessons
    return m


def cmd_diff(a) -> None:
    m1, m2 = load_manifest(a.v1), load_manifest(a.v2)
    h1 = {f["hash"] for l in m1["lessons"] for f in l["files"]}
    new: dict[str, dict] = {}
    for l in m2["lessons"]:
        for f in l["files"]:
            if f["hash"] not in h1:
                new.setdefault(f["hash"], f)
    l1 = {l["id"]: l for l in m1["lessons"]}
    changed_lessons = [l["id"] for l in m2["lessons"] if l["id"] not in l1 or
                       [(f["path"], f["hash"]) for f in l["files"]] != [(f["path"], f["hash"]) for f in l1[l["id"]]["files"]]]
    # The changed lessons' blobs as they are in v2's package (each distinct content once):
    # what "the lessons that changed" weigh, the reference for the update target.
    changed_set = set(changed_lessons)
    lesson_blobs = {f["hash"]: f for l in m2["lessons"] if l["id"] in changed_set for f in l["files"]}
    res = dict(
        v1_lessons=len(m1["lessons"]), v2_lessons=len(m2["lessons"]),
        changed_lessons=changed_lessons,
        changed_lesson_bytes=sum(f["stored_size"] for f in lesson_blobs.values()),
        changed_lesson_blobs=len(lesson_blobs),
        new_blobs=len(new),
        changed_bytes=sum(f["stored_size"] for f in new.values()),
        changed_raw_bytes=sum(f["size"] for f in new.values()),
        new_text_blobs=sum(1 for f in new.values() if f["encoding"] == "zstd"),
        v2_stored_bytes=sum(f["stored_size"] for f in {f["hash"]: f for l in m2["lessons"] for f in l["files"]}.values()),
        dict_v1=m1.get("dictionary"), dict_v2=m2.get("dictionary"),
    )
    # Files of the two package folders: what a mirror (rsync, cp -u) would have to move.
    v2_files, churn_files, churn_bytes = 0, 0, 0
    for dirpath, _, names in os.walk(a.v2):
        for name in names:
            p2 = os.path.join(dirpath, name)
            rel = os.path.relpath(p2, a.v2)
            p1 = os.path.join(a.v1, rel)
            v2_files += 1
            s2 = os.path.getsize(p2)
            if os.path.isfile(p1) and os.path.getsize(p1) == s2 and open(p1, "rb").read() == open(p2, "rb").read():
                continue
            churn_files += 1
            churn_bytes += s2
    res.update(v2_package_files=v2_files, mirror_files=churn_files, mirror_bytes=churn_bytes)
    man_name = [e["manifest"] for e in json.load(open(os.path.join(a.v2, "package.json")))["manifests"]][0]
    res["v2_manifest_bytes"] = os.path.getsize(os.path.join(a.v2, man_name))
    root = json.load(open(os.path.join(a.v2, man_name)))
    if root.get("format") == "dars-manifest/2":
        res["v2_root"] = True
        res["changed_part_bytes"] = sum(
            os.path.getsize(os.path.join(a.v2, "lessons", l["part"][:2], l["part"]))
            for l in root["lessons"] if l["id"] in changed_set)
    if a.store:
        db = sqlite3.connect(f"file:{a.store}?mode=ro", uri=True)
        z = g = r = missing = 0
        for h in new:
            row = db.execute("SELECT storage, size, coalesce(zstd_size,0), coalesce(gzip_size,0) FROM blobs WHERE hash = ?",
                             (bytes.fromhex(h),)).fetchone()
            if row is None:
                missing += 1
                continue
            if row[0] == 1:
                z += row[2]
                g += row[3]
            else:
                r += row[1]
        res.update(store_new_zstd=z, store_new_gzip=g, store_new_raw=r, store_missing=missing,
                   store_payload=z + g + r)
        db.close()
    write_json(a.out, res)


# ------------------------------------------------------------------ run with /proc/PID/io
IO_KEYS = ("rchar", "wchar", "syscr", "syscw", "read_bytes", "write_bytes", "cancelled_write_bytes")


def read_io(pid: int) -> dict | None:
    try:
        with open(f"/proc/{pid}/io") as f:
            return {k: int(v) for k, v in (line.split(":") for line in f if ":" in line)}
    except (OSError, ValueError):
        return None


def self_io() -> dict:
    return read_io(os.getpid()) or {}


def cmd_run(a) -> None:
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    env = dict(os.environ)
    reader = ck = None
    hold = {}
    if a.hold_db:
        # A reader holding a snapshot from before the import: SQLite cannot copy any WAL frame
        # written after it into the database, nor reset the WAL, and dars is not the last
        # connection when it closes, so no checkpoint runs inside the measured process.
        reader = sqlite3.connect(a.hold_db, isolation_level=None, timeout=30)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM lessons").fetchone()
    out = open(a.log, "wb") if a.log else subprocess.DEVNULL
    samples = 0
    last = None
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if a.log else None, env=env,
                            start_new_session=False)
    pid = proc.pid
    exited = threading.Event()
    exit_time = [None]

    def waiter():
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        exit_time[0] = time.perf_counter()
        exited.set()

    threading.Thread(target=waiter, daemon=True).start()
    peak_threads = 0
    while not exited.wait(a.interval):
        v = read_io(pid)
        if v:
            last = v
            samples += 1
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("Threads:"):
                        peak_threads = max(peak_threads, int(line.split()[1]))
        except OSError:
            pass
    final = read_io(pid)  # the zombie still has its totals
    if final:
        last = final
    _, status, ru = os.wait4(pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = exit_time[0] - t0
    res = dict(cmd=cmd, rc=proc.returncode, wall=wall, user=ru.ru_utime, sys=ru.ru_stime,
               maxrss_kb=ru.ru_maxrss, io=last or {}, io_from_zombie=final is not None, samples=samples,
               peak_threads=peak_threads, oublock_bytes=ru.ru_oublock * 512, inblock_bytes=ru.ru_inblock * 512)
    if a.log:
        try:
            with open(a.log, "rb") as f:
                f.seek(max(0, os.path.getsize(a.log) - 4096))
                res["tail"] = f.read().decode("utf-8", "replace").splitlines()[-6:]
        except OSError:
            pass
    if reader is not None:
        # The deferred checkpoint, measured on its own: open a second connection first so that
        # closing the reader is not the last close; checkpoint; then close both.
        wal = a.hold_db + "-wal"
        hold["wal_bytes_before"] = os.path.getsize(wal) if os.path.exists(wal) else 0
        io0 = self_io()
        c0 = time.perf_counter()
        ck = sqlite3.connect(a.hold_db, isolation_level=None, timeout=30)
        reader.execute("COMMIT")
        reader.close()
        row = ck.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        ck.close()
        c1 = time.perf_counter()
        io1 = self_io()
        hold.update(checkpoint_result=list(row), checkpoint_wall=c1 - c0,
                    checkpoint_io={k: io1.get(k, 0) - io0.get(k, 0) for k in IO_KEYS},
                    wal_bytes_after=os.path.getsize(wal) if os.path.exists(wal) else 0)
        res["hold"] = hold
    write_json(a.json, res)
    if proc.returncode != 0:
        log(f"command failed ({proc.returncode}): {' '.join(cmd)}" + (f"; log {a.log}" if a.log else ""))
        sys.exit(proc.returncode if proc.returncode > 0 else 1)


# ------------------------------------------------------------------ page cache
def cmd_evict(a) -> None:
    n = skipped = 0
    for root in a.dirs:
        for dirpath, _, names in os.walk(root):
            for name in names:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                if not os.path.isfile(p) or os.path.islink(p):
                    continue
                if st.st_nlink > 1:
                    # a hard link shares its pages with another tree (the corpus nginx serves)
                    skipped += 1
                    continue
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.fdatasync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
                n += 1
    log(f"evicted {n} files from the page cache" + (f" ({skipped} hard-linked files left alone)" if skipped else ""))


# ------------------------------------------------------------------ device writes
def sectors_written(path: str) -> tuple[str, int]:
    """The block device holding `path` and the sectors (512 bytes) written to it since boot."""
    dev = os.stat(path).st_dev
    sys_dir = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"
    fields = open(os.path.join(sys_dir, "stat")).read().split()
    return os.path.basename(os.path.realpath(sys_dir)), int(fields[6])


def cmd_device(a) -> None:
    """E: bytes that reach the block device while a command runs, then `sync` (every dirty page
    of it written, the filesystem's journal included), each run on a fresh copy of `--pristine`;
    an idle stretch as long (also ended by `sync`) measures what the rest of the machine wrote,
    and is subtracted. The least of `--runs` runs is kept: other writers only add."""
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    runs = []
    for _ in range(a.runs):
        shutil.rmtree(a.store, ignore_errors=True)
        subprocess.run(["cp", "-a", a.pristine, a.store], check=True)
        os.sync()
        subprocess.run([sys.executable, __file__, "evict", *a.evict, a.store], check=True,
                       stderr=subprocess.DEVNULL)
        dev, s0 = sectors_written(a.store)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.sync()
        wall = time.perf_counter() - t0
        _, s1 = sectors_written(a.store)
        os.sync()
        _, i0 = sectors_written(a.store)
        time.sleep(wall)
        os.sync()
        _, i1 = sectors_written(a.store)
        runs.append(dict(written=(s1 - s0) * 512, idle=(i1 - i0) * 512, wall=wall))
    best = min(runs, key=lambda r: r["written"] - r["idle"])
    write_json(a.json, dict(device=dev, runs=runs, written=max(0, best["written"] - best["idle"])))

# ------------------------------------------------------------------ strace
SYSCALL = re.compile(r'^(?:\[pid\s+\d+\]\s+|\d+\s+)?(\w+)\((\d+)<([^>]*)>.*\)\s+=\s+(-?\d+)')


def classify(path: str, store: str, pkg: str) -> str:
    if path.startswith(pkg):
        return "package"
    if path.startswith(store):
        base = os.path.basename(path)
        if base.endswith("-wal"):
            return "store WAL"
        if base.endswith("-shm"):
            return "store shm"
        if base.endswith("-journal"):
            return "store journal"
        return "store database"
    return "other"


def cmd_strace(a) -> None:
    store = os.path.realpath(a.store)
    pkg = os.path.realpath(a.pkg)
    reads: dict[str, int] = {}
    writes: dict[str, int] = {}
    calls: dict[str, int] = {}
    fsyncs: dict[str, int] = {}
    logs = [os.path.join(a.log, n) for n in sorted(os.listdir(a.log))] if os.path.isdir(a.log) else [a.log]
    lines = (line for log in logs for line in open(log, errors="replace"))
    for line in lines:
        m = SYSCALL.match(line)
        if not m:
            continue
        name, _, path, ret = m.group(1), m.group(2), m.group(3), int(m.group(4))
        cls = classify(path, store, pkg)
        if name in ("fsync", "fdatasync"):
            fsyncs[cls] = fsyncs.get(cls, 0) + 1
            continue
        if ret <= 0:
            continue
        if name in ("read", "pread64", "readv", "preadv", "preadv2"):
            reads[cls] = reads.get(cls, 0) + ret
        elif name in ("write", "pwrite64", "writev", "pwritev", "pwritev2"):
            writes[cls] = writes.get(cls, 0) + ret
        else:
            continue
        calls[cls] = calls.get(cls, 0) + 1
    write_json(a.out, dict(read=reads, write=writes, calls=calls, fsync=fsyncs))


# ------------------------------------------------------------------ sqlite page counts
def manifest_rows(c) -> tuple:
    """(manifests kept, bytes of their stored texts): schema 4 keeps texts (deltas) apart."""
    tables = {r[0] for r in c.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    n = c.execute("SELECT count(*) FROM manifests").fetchone()[0]
    if "manifest_texts" in tables:
        return (n, c.execute("SELECT coalesce(sum(length(data)), 0) FROM manifest_texts").fetchone()[0])
    return (n, c.execute("SELECT coalesce(sum(length(manifest)), 0) FROM manifests").fetchone()[0])


def cmd_sqlite(a) -> None:
    db = os.path.join(a.store, "dars.sqlite")
    res = dict(db_bytes=os.path.getsize(db) if os.path.exists(db) else 0,
               wal_bytes=os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0)
    if a.pages and os.path.exists(db):
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        res.update(page_size=c.execute("PRAGMA page_size").fetchone()[0],
                   page_count=c.execute("PRAGMA page_count").fetchone()[0],
                   freelist=c.execute("PRAGMA freelist_count").fetchone()[0],
                   autocheckpoint=c.execute("PRAGMA wal_autocheckpoint").fetchone()[0],
                   blobs=c.execute("SELECT count(*) FROM blobs").fetchone()[0],
                   lessons=c.execute("SELECT count(*) FROM lessons").fetchone()[0],
                   manifests=manifest_rows(c),
                   files=c.execute("SELECT count(*) FROM files").fetchone()[0],
                   lessons_by_seq=dict(c.execute("SELECT seq, count(*) FROM lesson_seqs GROUP BY seq").fetchall()))
        c.close()
    write_json(a.out, res)


# ------------------------------------------------------------------ gzip variants after an import
def pending_gzip(dars: str, store: str) -> int:
    out = subprocess.run([dars, "--data", store, "status", "--json"], check=True, capture_output=True).stdout
    return int(json.loads(out).get("gzip_pending", 0))


def cmd_variants(a) -> None:
    """Time `dars serve`'s background worker until every gzip variant of the store is made.

    The server runs in a private network namespace (only its own loopback: nothing reaches
    the machine's network, mDNS included), listening on port 0; its /proc/PID/io is read
    when `dars status` says no variant is left, then it is stopped with SIGTERM."""
    t0 = time.perf_counter()
    before = pending_gzip(a.dars, a.store)
    res = dict(pending_before=before)
    if before == 0:
        res.update(wall=0.0, io={}, user=0.0, sys=0.0)
        write_json(a.json, res)
        return
    log = open(a.log, "wb") if a.log else subprocess.DEVNULL
    proc = subprocess.Popen(
        ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" --data "$1" serve --listen 127.0.0.1:0',
         a.dars, a.store], stdout=log, stderr=subprocess.STDOUT)
    io, left, polls = {}, before, 0
    try:
        while True:
            time.sleep(a.interval)
            polls += 1
            v = read_io(proc.pid)
            if v:
                io = v
            if proc.poll() is not None:
                raise SystemExit(f"dars serve exited ({proc.returncode}) with {left} variants left; see {a.log}")
            left = pending_gzip(a.dars, a.store)
            if left == 0:
                break
            if time.perf_counter() - t0 > a.timeout:
                raise SystemExit(f"{left} of {before} variants still missing after {a.timeout} s")
        wall = time.perf_counter() - t0
        v = read_io(proc.pid)
        if v:
            io = v
        with open(f"/proc/{proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tck = os.sysconf("SC_CLK_TCK")
        res.update(wall=wall, io=io, user=int(fields[11]) / tck, sys=int(fields[12]) / tck, polls=polls)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    write_json(a.json, res)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd_name", required=True)
    s = sub.add_parser("variants")
    s.add_argument("--dars", required=True)
    s.add_argument("--store", required=True)
    s.add_argument("--json", required=True)
    s.add_argument("--log")
    s.add_argument("--interval", type=float, default=0.1)
    s.add_argument("--timeout", type=float, default=1800)
    s.set_defaults(fn=cmd_variants)
    s = sub.add_parser("sizes")
    s.add_argument("--corpus", required=True)
    s.add_argument("--cache")
    s.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    s.add_argument("--distinct", action="store_true")
    s.add_argument("--out")
    s.set_defaults(fn=cmd_sizes)
    s = sub.add_parser("breakdown")
    s.add_argument("--pkg", required=True)
    s.add_argument("--corpus", required=True)
    s.add_argument("--cache", required=True)
    s.add_argument("--out")
    s.set_defaults(fn=cmd_breakdown)
    s = sub.add_parser("pkgsize")
    s.add_argument("dir")
    s.add_argument("--out")
    s.set_defaults(fn=cmd_pkgsize)
    s = sub.add_parser("split")
    s.add_argument("--corpus", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--lessons", type=int, default=300)
    s.add_argument("--json")
    s.set_defaults(fn=cmd_split)
    s = sub.add_parser("v2")
    s.add_argument("--src", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--pct", type=float, default=1.0)
    s.add_argument("--text-every", type=int, default=2)
    s.add_argument("--json")
    s.set_defaults(fn=cmd_v2)
    s = sub.add_parser("diff")
    s.add_argument("--v1", required=True)
    s.add_argument("--v2", required=True)
    s.add_argument("--store", help="dars.sqlite after importing v2: what it holds of the new blobs")
    s.add_argument("--out")
    s.set_defaults(fn=cmd_diff)
    s = sub.add_parser("run")
    s.add_argument("--json")
    s.add_argument("--log")
    s.add_argument("--interval", type=float, default=0.05)
    s.add_argument("--hold-db", help="hold a read snapshot on this database while the command runs")
    s.add_argument("cmd", nargs=argparse.REMAINDER)
    s.set_defaults(fn=cmd_run)
    s = sub.add_parser("evict")
    s.add_argument("dirs", nargs="+")
    s.set_defaults(fn=cmd_evict)
    s = sub.add_parser("device")
    s.add_argument("--json", required=True)
    s.add_argument("--pristine", required=True, help="store to copy before each run")
    s.add_argument("--store", required=True, help="the copy the command writes to")
    s.add_argument("--evict", nargs="*", default=[], help="folders to drop from the page cache first")
    s.add_argument("--runs", type=int, default=3)
    s.add_argument("cmd", nargs=argparse.REMAINDER)
    s.set_defaults(fn=cmd_device)
    s = sub.add_parser("strace")
    s.add_argument("--log", required=True)
    s.add_argument("--store", required=True)
    s.add_argument("--pkg", required=True)
    s.add_argument("--out")
    s.set_defaults(fn=cmd_strace)
    s = sub.add_parser("sqlite")
    s.add_argument("store")
    s.add_argument("--pages", action="store_true")
    s.add_argument("--out")
    s.set_defaults(fn=cmd_sqlite)
    a = p.parse_args()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    a.fn(a)


if __name__ == "__main__":
    main()

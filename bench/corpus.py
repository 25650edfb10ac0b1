#!/usr/bin/env python3
"""Build the dars serving-benchmark corpus from Debian documentation packages.

Each documentation package (or each large sub-folder of one) becomes one lesson
folder `OUT/<id>/` holding the package's files plus a generated `lesson.toml`.

  * packages are fetched with `apt-get download` into DEBS (cached),
  * all of them are unpacked with `dpkg-deb -x` into one merged root EXTRACT, so
    symlinks such as `_static/jquery.js -> /usr/share/javascript/jquery/jquery.js`
    resolve against the helper packages (libjs-*) exactly like on a real system,
  * file symlinks are dereferenced (copied as regular files), symlinked
    directories and dangling links are dropped,
  * `*.gz` files are decompressed (foo.txt.gz -> foo.txt) so that the corpus has
    no pre-compressed files of its own (nginx gets `.gz` siblings separately),
  * the lesson entry is the first existing of a list of hints, else
    `index.html`, else the shallowest/first HTML file.

The corpus is written to OUT.tmp and renamed to OUT when complete, and a stamp
file OUT.stamp records the spec it was built from, so a rerun with the same
spec reuses it.

Usage: corpus.py --mode full|quick --out DIR --debs DIR --extract DIR
"""

from __future__ import annotations

import argparse
import fnmatch
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

# Packages unpacked only so that symlinks in the doc packages resolve.
HELPERS = ["libjs-jquery", "libjs-underscore", "libjs-sphinxdoc"]

# One entry per lesson (or per group of lessons when "split" is set).
#   pkg     Debian package to download
#   root    folder inside the package that becomes the lesson
#   id      lesson id (for split: prefix, the sub-folder name is appended)
#   split   make one lesson per sub-folder of root
#   entry   glob patterns tried in order at the lesson root
FULL = [
    dict(pkg="python3.11-doc", root="usr/share/doc/python3.11/html", id="deb-python3-11-doc",
         title="Python 3.11 Documentation", subject="Programming", grade=11, entry=["index.html"]),
    dict(pkg="postgresql-doc-15", root="usr/share/doc/postgresql-doc-15/html", id="deb-postgresql-doc-15",
         title="PostgreSQL 15 Documentation", subject="Databases", grade=11, entry=["index.html"]),
    dict(pkg="debian-reference-en", root="usr/share/debian-reference", id="deb-debian-reference-en",
         title="Debian Reference", subject="Computing", grade=9, entry=["index.en.html"]),
    dict(pkg="debian-handbook", root="usr/share/doc/debian-handbook/html", id="deb-debian-handbook",
         split=True, title="The Debian Administrator's Handbook", subject="Computing", grade=10,
         entry=["index.html"]),
    dict(pkg="gimp-help-en", root="usr/share/gimp/2.0/help", id="deb-gimp-help-en",
         title="GNU Image Manipulation Program User Manual", subject="Art", grade=7,
         entry=["en/index.html"]),
    dict(pkg="libgtk-3-doc", root="usr/share/gtk-doc/html", id="deb-libgtk-3-doc", split=["gtk3", "gdk3"],
         title="GTK 3 Reference Manual", subject="Programming", grade=11, entry=["index.html"]),
    dict(pkg="maxima-doc", root="usr/share/doc/maxima-doc/html", id="deb-maxima-doc",
         title="Maxima Manual", subject="Mathematics", grade=11, entry=["maxima_toc.html", "maxima.html"]),
    dict(pkg="gnuplot-doc", root="usr/share/doc/gnuplot/htmldocs", id="deb-gnuplot-doc",
         title="gnuplot Documentation", subject="Mathematics", grade=10, entry=["index.html"]),
    dict(pkg="qtbase5-doc-html", root="usr/share/qt5/doc", id="deb-qtbase5-doc-html", split=True,
         title="Qt 5 Reference Documentation", subject="Programming", grade=11,
         entry=["*-index.html", "*-manual.html", "index.html"]),
]

QUICK_PKGS = {"debian-reference-en", "maxima-doc", "libgtk-3-doc"}

ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def specs_for(mode: str) -> list[dict]:
    if mode == "full":
        return FULL
    return [s for s in FULL if s["pkg"] in QUICK_PKGS]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def fetch(pkgs: list[str], debs: str) -> dict[str, str]:
    os.makedirs(debs, exist_ok=True)
    have = {}
    for f in os.listdir(debs):
        if f.endswith(".deb"):
            have[f.split("_", 1)[0]] = os.path.join(debs, f)
    missing = [p for p in pkgs if p not in have]
    have = {p: d for p, d in have.items() if p in pkgs}
    if missing:
        log(f"corpus: apt-get download {' '.join(missing)}")
        r = subprocess.run(["apt-get", "download", *missing], cwd=debs)
        if r.returncode != 0:
            log("corpus: apt-get download failed; running apt-get update and retrying")
            subprocess.run(["apt-get", "update"], check=True, stdout=subprocess.DEVNULL)
            subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
        return fetch(pkgs, debs)
    return have


def extract(debmap: dict[str, str], extract_root: str) -> None:
    os.makedirs(extract_root, exist_ok=True)
    for pkg, deb in sorted(debmap.items()):
        stamp = os.path.join(extract_root, ".extracted-" + os.path.basename(deb))
        if os.path.exists(stamp):
            continue
        log(f"corpus: dpkg-deb -x {os.path.basename(deb)}")
        subprocess.run(["dpkg-deb", "-x", deb, extract_root], check=True)
        open(stamp, "w").close()


def resolve(root: str, rel: str, max_hops: int = 40) -> str | None:
    """Resolve `rel` inside the merged root, following symlinks as the real
    system would (absolute targets are taken relative to root). Returns the
    real path of a regular file or None."""
    todo = [c for c in rel.split("/") if c not in ("", ".")]
    cur: list[str] = []
    hops = 0
    while todo:
        c = todo.pop(0)
        if c == "..":
            if cur:
                cur.pop()
            continue
        p = os.path.join(root, *cur, c)
        if os.path.islink(p):
            hops += 1
            if hops > max_hops:
                return None
            t = os.readlink(p)
            if t.startswith("/"):
                cur = []
            todo = [x for x in t.split("/") if x not in ("", ".")] + todo
            continue
        if not os.path.lexists(p):
            return None
        cur.append(c)
    p = os.path.join(root, *cur)
    return p if os.path.isfile(p) else None


def toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # JSON strings are valid TOML basic strings


def build_lesson(src_root: str, rel_root: str, dest: str, meta: dict, stats: dict) -> None:
    src = os.path.join(src_root, rel_root)
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(src):
        # drop symlinked directories (duplicates / outside the lesson)
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
        for fn in sorted(filenames):
            full = os.path.join(dirpath, fn)
            rel = os.path.relpath(full, src)
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                stats["skipped_nonutf8"] += 1
                continue
            if os.path.islink(full):
                real = resolve(src_root, os.path.relpath(full, src_root))
                if real is None:
                    stats["dropped_links"] += 1
                    continue
                stats["dereferenced_links"] += 1
            else:
                real = full
                if not os.path.isfile(real):
                    continue
            if rel == "lesson.toml":
                continue
            out_rel = rel
            gz = False
            if rel.endswith(".gz"):
                out_rel = rel[:-3]
                gz = True
                if os.path.lexists(os.path.join(src, out_rel)):
                    stats["dropped_gz_dupes"] += 1
                    continue
            out = os.path.join(dest, out_rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            if gz:
                try:
                    with gzip.open(real, "rb") as fi, open(out, "wb") as fo:
                        shutil.copyfileobj(fi, fo)
                    stats["gunzipped"] += 1
                except OSError:
                    os.unlink(out)
                    shutil.copyfile(real, os.path.join(dest, rel))
                    out_rel = rel
            else:
                shutil.copyfile(real, out)
            files.append(out_rel)

    htmls = sorted((f for f in files if f.endswith((".html", ".htm"))),
                   key=lambda f: (f.count("/"), f))
    entry = None
    for pat in meta["entry"] + ["index.html"]:
        m = sorted(f for f in files
                   if f.count("/") == pat.count("/") and fnmatch.fnmatchcase(f, pat))
        if m:
            entry = m[0]
            break
    if entry is None:
        if not htmls:
            raise SystemExit(f"corpus: lesson {meta['id']} has no HTML file")
        entry = htmls[0]
    toml = [
        f"id = {toml_str(meta['id'])}",
        f"title = {toml_str(meta['title'])}",
        f"language = {toml_str(meta['language'])}",
        f"grade = {int(meta['grade'])}",
        f"subject = {toml_str(meta['subject'])}",
        f"summary = {toml_str(meta['summary'])}",
        f"entry = {toml_str(entry)}",
    ]
    with open(os.path.join(dest, "lesson.toml"), "w", encoding="utf-8") as f:
        f.write("\n".join(toml) + "\n")
    stats["lessons"].append((meta["id"], len(files), entry))


def lesson_metas(spec: dict, extract_root: str):
    root = os.path.join(extract_root, spec["root"])
    if not os.path.isdir(root):
        raise SystemExit(f"corpus: {spec['pkg']}: {spec['root']} not found")
    base = dict(title=spec["title"], subject=spec["subject"], grade=spec["grade"],
                entry=spec["entry"], language="en")
    summary = f"Documentation from the Debian package {spec['pkg']}."
    if not spec.get("split"):
        yield spec["root"], dict(base, id=spec["id"], summary=summary)
        return
    subs = spec["split"] if isinstance(spec["split"], list) else sorted(os.listdir(root))
    for sub in subs:
        p = os.path.join(root, sub)
        if os.path.islink(p) or not os.path.isdir(p):
            continue
        lid = spec["id"] + "-" + re.sub(r"[^a-z0-9]+", "-", sub.lower()).strip("-")
        lang = "en"
        title = f"{spec['title']}: {sub}"
        if spec["pkg"] == "debian-handbook":
            lang = sub.split("-")[0].lower()
            title = f"{spec['title']} ({sub})"
        yield os.path.join(spec["root"], sub), dict(base, id=lid, title=title, language=lang,
                                                     summary=summary)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["full", "quick"], default="full")
    ap.add_argument("--out", required=True)
    ap.add_argument("--debs", required=True)
    ap.add_argument("--extract", required=True)
    a = ap.parse_args()

    specs = specs_for(a.mode)
    digest = hashlib.sha256(json.dumps([specs, HELPERS, 2], sort_keys=True).encode()).hexdigest()
    stamp = a.out.rstrip("/") + ".stamp"
    if os.path.isdir(a.out) and os.path.exists(stamp) and open(stamp).read().strip() == digest:
        log(f"corpus: reusing {a.out}")
    else:
        debmap = fetch(sorted({s["pkg"] for s in specs} | set(HELPERS)), a.debs)
        extract(debmap, a.extract)
        tmp = a.out.rstrip("/") + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        stats = dict(lessons=[], skipped_nonutf8=0, dropped_links=0, dereferenced_links=0,
                     dropped_gz_dupes=0, gunzipped=0)
        seen = set()
        for spec in specs:
            for rel_root, meta in lesson_metas(spec, a.extract):
                assert ID_RE.match(meta["id"]), meta["id"]
                assert meta["id"] not in seen, meta["id"]
                seen.add(meta["id"])
                build_lesson(a.extract, rel_root, os.path.join(tmp, meta["id"]), meta, stats)
        log(f"corpus: {len(stats['lessons'])} lessons; symlinks dereferenced "
            f"{stats['dereferenced_links']}, dropped {stats['dropped_links']}; "
            f"gunzipped {stats['gunzipped']}; non-UTF-8 names skipped {stats['skipped_nonutf8']}")
        shutil.rmtree(a.out, ignore_errors=True)
        os.rename(tmp, a.out)
        with open(stamp, "w") as f:
            f.write(digest + "\n")

    # Summary (lesson.toml files excluded from the counts)
    nfiles = 0
    nbytes = 0
    by_ext: dict[str, list[int]] = {}
    lessons = sorted(os.listdir(a.out))
    for dirpath, _, filenames in os.walk(a.out):
        for fn in filenames:
            if fn == "lesson.toml" and os.path.dirname(os.path.relpath(os.path.join(dirpath, fn), a.out)) in lessons:
                continue
            sz = os.path.getsize(os.path.join(dirpath, fn))
            nfiles += 1
            nbytes += sz
            ext = fn.rsplit(".", 1)[-1].lower() if "." in fn else "(none)"
            e = by_ext.setdefault(ext, [0, 0])
            e[0] += 1
            e[1] += sz
    top = sorted(by_ext.items(), key=lambda kv: -kv[1][1])[:8]
    summary = dict(lessons=len(lessons), files=nfiles, bytes=nbytes,
                   by_ext={k: v for k, v in top})
    with open(a.out.rstrip("/") + ".json", "w") as f:
        json.dump(summary, f, indent=1)
    print(f"corpus: {a.out}: {len(lessons)} lessons, {nfiles} files, "
          f"{nbytes / 1e6:.1f} MB ({nbytes} bytes)")
    print("corpus: by type: " + ", ".join(f"{k} {v[0]} files/{v[1] / 1e6:.1f} MB" for k, v in top))


if __name__ == "__main__":
    main()

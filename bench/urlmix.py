#!/usr/bin/env python3
"""Build a page-load URL mix for the serving benchmark.

Simulates browsing sessions: a session picks a lesson (weighted by its number of
HTML pages), opens the lesson's entry page, then follows 0-11 random in-lesson
links. Each page load requests the HTML page plus the stylesheets, scripts,
icons and images it references (and images referenced by url() in those
stylesheets), skipping what the browser already fetched in this session (its
cache). References that do not resolve to a file of the same lesson are
ignored. The result is HTML-heavy, with the images of the pages visited.

Writes N request paths (percent-encoded, one per line) to OUT and prints the
composition of the mix. Deterministic for a given corpus and seed.

Usage: urlmix.py --corpus DIR --out FILE [--n 1000] [--seed 1]
"""

from __future__ import annotations

import argparse
import html.parser
import json
import os
import posixpath
import random
import re
import sys
import tomllib
from urllib.parse import quote, unquote, urlsplit

HTML_EXT = (".html", ".htm", ".xhtml")


class RefParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.assets: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "img":
            if a.get("src"):
                self.assets.append(a["src"])
        elif tag == "script":
            if a.get("src"):
                self.assets.append(a["src"])
        elif tag == "link":
            rel = a.get("rel", "").lower()
            if any(r in rel for r in ("stylesheet", "icon")) and a.get("href"):
                self.assets.append(a["href"])
        elif tag in ("object", "embed"):
            for k in ("data", "src"):
                if a.get(k):
                    self.assets.append(a[k])
        elif tag in ("image", "use"):
            h = a.get("href") or a.get("xlink:href")
            if h:
                self.assets.append(h)
        elif tag == "a":
            if a.get("href"):
                self.links.append(a["href"])


CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)")


def resolve(base_file: str, ref: str, files: set[str]) -> str | None:
    """Resolve a reference found in lesson file base_file to a lesson file."""
    ref = ref.strip()
    if not ref or ref.startswith(("#", "data:", "javascript:", "mailto:")):
        return None
    u = urlsplit(ref)
    if u.scheme or u.netloc or not u.path or u.path.startswith("/"):
        return None
    p = posixpath.normpath(posixpath.join(posixpath.dirname(base_file), unquote(u.path)))
    if p.startswith("../") or p == "..":
        return None
    return p if p in files else None


class Lesson:
    def __init__(self, root: str, lid: str):
        self.id = lid
        self.root = root
        meta = tomllib.load(open(os.path.join(root, "lesson.toml"), "rb"))
        self.entry = meta.get("entry", "index.html")
        self.files: set[str] = set()
        for dirpath, _, fns in os.walk(root):
            for fn in fns:
                rel = os.path.relpath(os.path.join(dirpath, fn), root).replace(os.sep, "/")
                if rel != "lesson.toml":
                    self.files.add(rel)
        self.pages = sorted(f for f in self.files if f.lower().endswith(HTML_EXT))
        self._cache: dict[str, tuple[list[str], list[str]]] = {}

    def refs(self, f: str) -> tuple[list[str], list[str]]:
        """(assets, links) of lesson file f, resolved to lesson files."""
        if f in self._cache:
            return self._cache[f]
        data = open(os.path.join(self.root, f), "rb").read().decode("utf-8", "replace")
        assets: list[str] = []
        links: list[str] = []
        if f.lower().endswith(".css"):
            raw_assets, raw_links = CSS_URL.findall(data), []
        else:
            p = RefParser()
            try:
                p.feed(data)
                p.close()
            except Exception:  # noqa: BLE001 - malformed HTML: keep what was parsed
                pass
            raw_assets, raw_links = p.assets, p.links
        for r in raw_assets:
            x = resolve(f, r, self.files)
            if x and x not in assets:
                assets.append(x)
        for r in raw_links:
            x = resolve(f, r, self.files)
            if x and x.lower().endswith(HTML_EXT) and x not in links:
                links.append(x)
        self._cache[f] = (assets, links)
        return assets, links

    def url(self, f: str) -> str:
        return "/lessons/" + quote(self.id) + "/" + quote(f)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    rng = random.Random(a.seed)
    lessons = [Lesson(os.path.join(a.corpus, d), d) for d in sorted(os.listdir(a.corpus))
               if os.path.isfile(os.path.join(a.corpus, d, "lesson.toml"))]
    lessons = [l for l in lessons if l.pages]
    weights = [len(l.pages) for l in lessons]

    urls: list[tuple[str, str, str]] = []  # (url, lesson id, file)
    sessions = 0
    while len(urls) < a.n:
        les = rng.choices(lessons, weights)[0]
        sessions += 1
        cached: set[str] = set()
        page = les.entry if les.entry in les.files else rng.choice(les.pages)
        for k in range(rng.randint(1, 12)):
            if k == 0 and "/" not in page and page == les.entry:
                urls.append(("/lessons/" + quote(les.id) + "/", les.id, page))
            else:
                urls.append((les.url(page), les.id, page))
            assets, links = les.refs(page)
            for asset in assets:
                if asset in cached:
                    continue
                cached.add(asset)
                urls.append((les.url(asset), les.id, asset))
                if asset.lower().endswith(".css"):
                    for sub in les.refs(asset)[0]:
                        if sub not in cached:
                            cached.add(sub)
                            urls.append((les.url(sub), les.id, sub))
            page = rng.choice(links) if links else rng.choice(les.pages)
    urls = urls[: a.n]

    with open(a.out, "w") as f:
        for u, _, _ in urls:
            f.write(u + "\n")
    with open(a.out + ".files", "w") as f:
        for u, lid, rel in urls:
            f.write(json.dumps([u, lid, rel]) + "\n")

    kinds: dict[str, list[int]] = {}
    by_lesson = {l.id: l for l in lessons}
    for u, lid, rel in urls:
        ext = rel.rsplit(".", 1)[-1].lower() if "." in rel else "(none)"
        kind = {"html": "html", "htm": "html", "xhtml": "html", "png": "image", "jpg": "image",
                "jpeg": "image", "gif": "image", "svg": "image", "webp": "image", "ico": "image",
                "css": "css", "js": "js"}.get(ext, "other")
        size = os.path.getsize(os.path.join(by_lesson[lid].root, rel))
        e = kinds.setdefault(kind, [0, 0])
        e[0] += 1
        e[1] += size
    total = sum(v[1] for v in kinds.values())
    uniq = len({u for u, _, _ in urls})
    desc = ", ".join(f"{k} {v[0]} ({v[0] * 100 // len(urls)}%, avg {v[1] / max(v[0], 1) / 1024:.1f} KiB)"
                     for k, v in sorted(kinds.items(), key=lambda kv: -kv[1][0]))
    print(f"urlmix: {len(urls)} URLs ({uniq} distinct) from {sessions} sessions over "
          f"{len({l for _, l, _ in urls})} lessons; {desc}; mean uncompressed body "
          f"{total / len(urls) / 1024:.1f} KiB")
    with open(a.out + ".json", "w") as f:
        json.dump(dict(urls=len(urls), distinct=uniq, sessions=sessions, kinds=kinds,
                       mean_body=total / len(urls), desc=desc), f)


if __name__ == "__main__":
    sys.setrecursionlimit(10000)
    main()

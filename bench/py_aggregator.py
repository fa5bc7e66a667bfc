#!/usr/bin/env python3
"""The Python baseline for bench/run.sh: the aggregator a careful user writes instead of
feedloom, with PyPI feedparser and requests.

    bench/py_aggregator.py --urls urls.txt --db py.sqlite --out merged.rss [--threads 32] [--procs 2]

- fetch: a thread pool of requests sessions (keep-alive), conditional GET with the ETag and
  Last-Modified stored from the previous run (a 304 costs no parsing);
- parse: feedparser (which also sanitises HTML and resolves relative links) in a process pool
  sized to the cores, fed as bodies arrive, so parsing overlaps fetching;
- store: SQLite (WAL, synchronous=NORMAL), one transaction per run, items upserted by
  (source, id) and rewritten only when their content hash changed;
- publish: the newest 500 items of all sources as one RSS 2.0 file, rewritten only when it changed.

Prints one line: sources, 200s, 304s, failures, bytes, new/updated items.
"""

import argparse
import concurrent.futures as cf
import hashlib
import os
import sqlite3
import sys
import threading
import time
from xml.sax.saxutils import escape

import feedparser
import requests

_local = threading.local()


def session():
    s = getattr(_local, "s", None)
    if s is None:
        s = _local.s = requests.Session()
        s.headers["User-Agent"] = "py-aggregator/1 (feedloom bench)"
    return s


def fetch(url, etag, modified):
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    r = session().get(url, headers=headers, timeout=30)
    if r.status_code == 304:
        return url, 304, None, etag, modified
    r.raise_for_status()
    return url, r.status_code, r.content, r.headers.get("ETag"), r.headers.get("Last-Modified")


def parse(url, body):
    """Runs in a worker process: feedparser, then the fields the store keeps."""
    d = feedparser.parse(body, response_headers={"content-location": url})
    items = []
    for e in d.entries:
        content = e.get("content")
        html = content[0].get("value", "") if content else e.get("summary", "")
        when = e.get("published_parsed") or e.get("updated_parsed")
        items.append(
            (
                e.get("id") or e.get("link") or e.get("title", ""),
                e.get("title", ""),
                e.get("link", ""),
                time.strftime("%Y-%m-%dT%H:%M:%SZ", when) if when else None,
                e.get("summary", "")[:500],
                html,
            )
        )
    return url, d.feed.get("title", url), items


SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (url TEXT PRIMARY KEY, title TEXT, etag TEXT, modified TEXT);
CREATE TABLE IF NOT EXISTS items (
    source TEXT, id TEXT, title TEXT, link TEXT, published TEXT, summary TEXT, content TEXT,
    hash TEXT, first_seen TEXT, PRIMARY KEY (source, id));
CREATE INDEX IF NOT EXISTS items_published ON items (published);
"""


def render(db):
    rows = db.execute(
        "SELECT i.id, i.title, i.link, i.published, i.content, s.title FROM items i "
        "JOIN sources s ON s.url = i.source ORDER BY i.published DESC LIMIT 500"
    ).fetchall()
    out = ['<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>All</title>'
           "<link>http://127.0.0.1/</link><description>merged</description>\n"]
    for gid, title, link, published, content, src in rows:
        date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.strptime(published, "%Y-%m-%dT%H:%M:%SZ")) if published else ""
        out.append(
            f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
            f'<guid isPermaLink="false">{escape(gid)}</guid><pubDate>{date}</pubDate>'
            f"<source>{escape(src)}</source><description>{escape(content)}</description></item>\n"
        )
    out.append("</channel></rss>\n")
    return "".join(out).encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--urls", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=32)
    ap.add_argument("--procs", type=int, default=os.cpu_count())
    a = ap.parse_args()
    urls = [u.strip() for u in open(a.urls) if u.strip()]
    db = sqlite3.connect(a.db)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    known = {u: (e, m) for u, e, m in db.execute("SELECT url, etag, modified FROM sources")}
    counts = {"s200": 0, "s304": 0, "failed": 0, "bytes": 0, "new": 0, "updated": 0}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    validators = {}
    with cf.ThreadPoolExecutor(a.threads) as fetchers, cf.ProcessPoolExecutor(a.procs) as parsers:
        fetches = [fetchers.submit(fetch, u, *known.get(u, (None, None))) for u in urls]
        parses = []
        for f in cf.as_completed(fetches):
            try:
                url, status, body, etag, modified = f.result()
            except Exception as e:  # noqa: BLE001 - one bad source must not stop the run
                counts["failed"] += 1
                print(f"py: {e}", file=sys.stderr)
                continue
            validators[url] = (etag, modified)
            if status == 304:
                counts["s304"] += 1
                continue
            counts["s200"] += 1
            counts["bytes"] += len(body)
            parses.append(parsers.submit(parse, url, body))
        with db:
            for url, (etag, modified) in validators.items():
                db.execute(
                    "INSERT INTO sources (url, title, etag, modified) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, modified = excluded.modified",
                    (url, url, etag, modified),
                )
            for p in cf.as_completed(parses):
                url, title, items = p.result()
                db.execute("UPDATE sources SET title = ? WHERE url = ?", (title, url))
                old = dict(db.execute("SELECT id, hash FROM items WHERE source = ?", (url,)))
                for gid, title, link, published, summary, html in items:
                    h = hashlib.sha1("\0".join((title, link, published or "", html)).encode()).hexdigest()
                    if old.get(gid) == h:
                        continue
                    counts["new" if gid not in old else "updated"] += 1
                    db.execute(
                        "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, id) DO UPDATE SET "
                        "title = excluded.title, link = excluded.link, published = excluded.published, "
                        "summary = excluded.summary, content = excluded.content, hash = excluded.hash",
                        (url, gid, title, link, published, summary, html, h, now),
                    )
    if counts["new"] or counts["updated"] or not os.path.exists(a.out):
        data = render(db)
        tmp = a.out + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, a.out)
    db.close()
    print("py: {n} sources, {s200} x 200, {s304} x 304, {failed} failed, {bytes} bytes, {new} new, {updated} updated".format(
        n=len(urls), **counts))
    sys.exit(1 if counts["failed"] else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Generates N source feeds for the refresh benchmark (bench/run.sh), deterministically.

    bench/gen_sources.py --n 1000 --out DIR [--seed 8] [--base-url http://127.0.0.1:18090/]
    bench/gen_sources.py --out DIR --update 0.1      # new items in 10% of the sources, in place
    bench/gen_sources.py --out DIR --reset           # back to the generated state

Mix: 70% RSS 2.0, 20% Atom 1.0, 10% RSS 1.0 (RDF); 20-100 items each; English, German, French,
Spanish, Russian and Ukrainian sources, a third of the Cyrillic ones in windows-1251. Bodies are
HTML of the kind sources send (paragraphs, links, an image, sometimes share buttons, a tracking
pixel, a script or a "read more" line) so that normalising costs what it costs on real feeds.
About one item in ten is a wire story that several sources carry with small edits (near
duplicates). GUIDs are stable: an item is a pure function of (seed, source, item number).

Writes DIR/feeds/<name>.{xml,atom,rdf}, DIR/urls.txt, DIR/feeds.opml, DIR/feedloom.toml
(sources + settings + a merged feed; database and output_dir relative to the config) and
DIR/state.json (each source's window of items). --update moves the window of a fraction of the
sources forward by 1-5 items and rewrites only those files: the others stay byte-identical, so
nginx answers 304 to a conditional GET for them.
"""

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import sys
from xml.sax.saxutils import escape

WORDS = {
    "en": "government minister budget market energy city council report police court school water price "
    "bank election region company workers river bridge hospital farmers harvest railway border talks "
    "agreement summit delegation exports investment project village road storm winter museum festival "
    "the a of in on for with said would new after before during while about against between".split(),
    "de": "Regierung Minister Haushalt Markt Energie Stadt Rat Bericht Polizei Gericht Schule Wasser Preis "
    "Bank Wahl Region Unternehmen Arbeiter Fluss Brücke Krankenhaus Bauern Ernte Bahn Grenze Gespräche "
    "der die das und mit für auf nach vor während über gegen zwischen sagte wurde neue größer".split(),
    "fr": "gouvernement ministre budget marché énergie ville conseil rapport police tribunal école eau prix "
    "banque élection région entreprise ouvriers rivière pont hôpital agriculteurs récolte frontière "
    "le la les des et avec pour sur après avant pendant entre contre selon été nouvelle déclaré".split(),
    "es": "gobierno ministro presupuesto mercado energía ciudad consejo informe policía tribunal escuela "
    "agua precio banco elección región empresa trabajadores río puente hospital agricultores cosecha "
    "el la los las y con para sobre después antes durante entre contra según dijo nueva año".split(),
    "ru": "правительство министр бюджет рынок энергия город совет доклад полиция суд школа вода цена банк "
    "выборы область компания рабочие река мост больница фермеры урожай железная дорога граница "
    "переговоры соглашение саммит делегация экспорт инвестиции проект село зима музей фестиваль "
    "и в на с по для после перед во время между против заявил новый года".split(),
    "uk": "уряд міністр бюджет ринок енергія місто рада звіт поліція суд школа вода ціна банк вибори "
    "область компанія робітники річка міст лікарня фермери врожай залізниця кордон перемовини "
    "угода саміт делегація експорт інвестиції проєкт село зима музей фестиваль їхній єдиний "
    "і в на з для після перед під час між проти заявив новий року".split(),
}
# (language, share of sources); windows-1251 for a third of the Cyrillic ones.
LANGS = [("en", 0.40), ("ru", 0.22), ("de", 0.12), ("fr", 0.10), ("es", 0.08), ("uk", 0.08)]
SHARE_WIDGET = (
    '<div class="share-buttons"><a href="https://www.facebook.com/sharer/sharer.php?u={u}">Share on Facebook</a> '
    '<a href="https://twitter.com/intent/tweet?url={u}">Tweet</a> '
    '<a href="mailto:?subject=story&amp;body={u}">Email</a></div>'
)
PIXEL = '<img src="https://stats.example-tracker.com/pixel.gif?id={id}" width="1" height="1" alt=""/>'
SCRIPT = '<script type="text/javascript">window.dataLayer=window.dataLayer||[];dataLayer.push({{"story":"{id}"}});</script>'
BASE_TIME = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
WIRE_STORIES = 300


def item_rng(seed, *parts):
    h = hashlib.blake2b(repr((seed,) + parts).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(h, "big"))


def sentence(r, lang, lo=6, hi=16):
    words = WORDS[lang]
    s = " ".join(r.choice(words) for _ in range(r.randint(lo, hi)))
    return s[0].upper() + s[1:] + "."


def paragraph(r, lang, host):
    parts = [sentence(r, lang) for _ in range(r.randint(2, 4))]
    if r.random() < 0.5:
        k = r.randrange(len(parts))
        parts[k] += f' <a href="https://{host}/topics/{r.randint(1, 400)}?utm_source=rss&amp;utm_medium=feed">{r.choice(WORDS[lang])}</a>'
    if r.random() < 0.2:
        parts[0] = f"<strong>{parts[0]}</strong>"
    return "<p>" + " ".join(parts) + "</p>"


def wire_story(seed, w):
    """A wire agency story (English) that several sources carry."""
    r = item_rng(seed, "wire", w)
    title = sentence(r, "en", 6, 11)[:-1]
    paras = [paragraph(r, "en", "wire.example.net") for _ in range(r.randint(2, 5))]
    return title, paras


def make_item(seed, src, idx):
    """Item number idx of source src: a dict of plain fields and an HTML body."""
    r = item_rng(seed, src["name"], idx)
    lang, host = src["lang"], src["host"]
    link = f"https://{host}/news/{src['name']}/{idx}.html"
    if lang == "en" and r.random() < 0.12:
        w = r.randrange(WIRE_STORIES)
        title, paras = wire_story(seed, w)
        paras = list(paras)
        if r.random() < 0.5:
            title = title + " - report"
        paras.insert(0, f"<p>({src['title']}) {sentence(r, 'en', 5, 10)}</p>")
        paras.append("<p><em>Reporting by Wire Agency; editing by the desk.</em></p>")
        body_paras = paras
    else:
        title = sentence(r, lang, 5, 12)[:-1]
        body_paras = [paragraph(r, lang, host) for _ in range(r.randint(2, 5))]
    if r.random() < 0.6:
        body_paras.insert(
            r.randint(0, 1),
            f'<p><img src="https://{host}/img/{idx}.jpg" alt="{escape(title[:40])}" width="640" height="360"/></p>',
        )
    if r.random() < 0.3:
        body_paras.append(SHARE_WIDGET.format(u=link))
    if r.random() < 0.2:
        body_paras.append(PIXEL.format(id=f"{src['name']}-{idx}"))
    if r.random() < 0.1:
        body_paras.append(SCRIPT.format(id=f"{src['name']}-{idx}"))
    if r.random() < 0.25:
        body_paras.append(f'<p><a href="{link}">Read more...</a></p>')
    when = BASE_TIME + dt.timedelta(minutes=37 * idx + src["offset"])
    return {
        "guid": f"{src['name']}-{idx:06d}",
        "title": title,
        "link": link,
        "when": when,
        "author": f"{r.choice(['Anna', 'Boris', 'Carla', 'Dmitri', 'Elena', 'Farid'])} {r.choice(['K.', 'M.', 'S.', 'T.'])}",
        "category": r.choice(WORDS[lang][:20]),
        "summary": sentence(r, lang, 15, 30),
        "html": "\n".join(body_paras),
    }


def rfc822(t):
    return t.strftime("%a, %d %b %Y %H:%M:%S +0000")


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def render_rss(src, items):
    out = [
        f'<?xml version="1.0" encoding="{src["encoding"]}"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">\n<channel>\n'
        f"<title>{escape(src['title'])}</title>\n<link>https://{src['host']}/</link>\n"
        f"<description>News from {escape(src['title'])}</description>\n<language>{src['lang']}</language>\n"
        f"<lastBuildDate>{rfc822(items[0]['when'])}</lastBuildDate>\n"
    ]
    for it in items:
        out.append(
            f"<item>\n<title>{escape(it['title'])}</title>\n<link>{escape(it['link'])}</link>\n"
            f'<guid isPermaLink="false">{it["guid"]}</guid>\n<pubDate>{rfc822(it["when"])}</pubDate>\n'
            f"<dc:creator>{escape(it['author'])}</dc:creator>\n<category>{escape(it['category'])}</category>\n"
            f"<description>{escape(it['summary'])}</description>\n"
            f"<content:encoded><![CDATA[{it['html']}]]></content:encoded>\n</item>\n"
        )
    out.append("</channel>\n</rss>\n")
    return "".join(out)


def render_atom(src, items):
    out = [
        f'<?xml version="1.0" encoding="{src["encoding"]}"?>\n'
        f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{src["lang"]}">\n'
        f"<title>{escape(src['title'])}</title>\n<id>tag:{src['host']},2026:feed</id>\n"
        f'<link rel="alternate" href="https://{src["host"]}/"/>\n<updated>{iso(items[0]["when"])}</updated>\n'
    ]
    for it in items:
        out.append(
            f"<entry>\n<id>tag:{src['host']},2026:{it['guid']}</id>\n<title>{escape(it['title'])}</title>\n"
            f'<link rel="alternate" type="text/html" href="{escape(it["link"])}"/>\n'
            f"<published>{iso(it['when'])}</published>\n<updated>{iso(it['when'])}</updated>\n"
            f"<author><name>{escape(it['author'])}</name></author>\n"
            f'<category term="{escape(it["category"])}"/>\n<summary>{escape(it["summary"])}</summary>\n'
            f'<content type="html">{escape(it["html"])}</content>\n</entry>\n'
        )
    out.append("</feed>\n")
    return "".join(out)


def render_rdf(src, items):
    seq = "".join(f'<rdf:li rdf:resource="{escape(it["link"])}"/>' for it in items)
    out = [
        f'<?xml version="1.0" encoding="{src["encoding"]}"?>\n'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/">\n'
        f'<channel rdf:about="https://{src["host"]}/">\n<title>{escape(src["title"])}</title>\n'
        f"<link>https://{src['host']}/</link>\n<description>News from {escape(src['title'])}</description>\n"
        f"<dc:language>{src['lang']}</dc:language>\n<items><rdf:Seq>{seq}</rdf:Seq></items>\n</channel>\n"
    ]
    for it in items:
        out.append(
            f'<item rdf:about="{escape(it["link"])}">\n<title>{escape(it["title"])}</title>\n'
            f"<link>{escape(it['link'])}</link>\n<dc:date>{iso(it['when'])}</dc:date>\n"
            f"<dc:creator>{escape(it['author'])}</dc:creator>\n<dc:subject>{escape(it['category'])}</dc:subject>\n"
            f"<description>{escape(it['summary'])}</description>\n"
            f"<content:encoded><![CDATA[{it['html']}]]></content:encoded>\n</item>\n"
        )
    out.append("</rdf:RDF>\n")
    return "".join(out)


RENDER = {"rss": (render_rss, "xml"), "atom": (render_atom, "atom"), "rdf": (render_rdf, "rdf")}


def plan(seed, n):
    """The sources: name, format, language, encoding, item count, window start."""
    r = random.Random(seed)
    sources = []
    for i in range(n):
        x = r.random()
        fmt = "rss" if x < 0.7 else ("atom" if x < 0.9 else "rdf")
        y, lang = r.random(), LANGS[-1][0]
        for code, share in LANGS:
            if y < share:
                lang = code
                break
            y -= share
        enc = "windows-1251" if lang in ("ru", "uk") and r.random() < 0.35 else "utf-8"
        name = f"s{i:05d}"
        sources.append(
            {
                "name": name,
                "format": fmt,
                "lang": lang,
                "encoding": enc,
                "count": r.randint(20, 100),
                "start": 0,
                "offset": r.randint(0, 600),
                "host": f"{name}.news.example.org",
                "title": f"{lang.upper()} Daily {i}",
            }
        )
    return sources


def write_source(out, seed, src):
    items = [make_item(seed, src, idx) for idx in range(src["start"] + src["count"] - 1, src["start"] - 1, -1)]
    render, ext = RENDER[src["format"]]
    text = render(src, items)
    data = text.encode(src["encoding"])
    path = os.path.join(out, "feeds", f"{src['name']}.{ext}")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return len(data)


def urls(base, sources):
    return [f"{base}feeds/{s['name']}.{RENDER[s['format']][1]}" for s in sources]


def write_lists(out, base, sources):
    us = urls(base, sources)
    with open(os.path.join(out, "urls.txt"), "w") as f:
        f.write("\n".join(us) + "\n")
    with open(os.path.join(out, "feeds.opml"), "w") as f:
        f.write('<?xml version="1.0" encoding="utf-8"?>\n<opml version="2.0"><head><title>bench</title></head><body>\n')
        for s, u in zip(sources, us):
            f.write(f'<outline type="rss" text="{escape(s["title"])}" xmlUrl="{escape(u)}"/>\n')
        f.write("</body></opml>\n")
    with open(os.path.join(out, "feedloom.toml"), "w") as f:
        # Every source is on one host (127.0.0.1), so per_host_concurrency is raised to
        # concurrency: with the default of 2 the benchmark would measure that limit, not feedloom.
        f.write(
            "[settings]\n"
            'database = "feedloom.db"\noutput_dir = "public"\nbase_url = "http://127.0.0.1:8080/"\n'
            "allow_private_networks = true\nconcurrency = 32\nper_host_concurrency = 32\n"
            'languages = ["en", "ru", "uk", "de", "fr", "es"]\n\n'
        )
        for s, u in zip(sources, us):
            f.write(f'[[source]]\nname = "{s["name"]}"\nurl = "{u}"\ntags = ["{s["lang"]}"]\n\n')
        f.write('[[feed]]\nname = "all"\ntitle = "All sources"\nlimit = 500\n\n')
        f.write('[[feed]]\nname = "cyrillic"\ntitle = "Russian and Ukrainian"\ntags = ["ru", "uk"]\nlimit = 200\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, help="number of sources (generate mode)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--base-url", default="http://127.0.0.1:18090/")
    ap.add_argument("--update", type=float, help="fraction of sources that get new items")
    ap.add_argument("--reset", action="store_true", help="undo every --update (rewrites only the changed sources)")
    a = ap.parse_args()
    state_path = os.path.join(a.out, "state.json")
    if a.reset:
        with open(state_path) as f:
            state = json.load(f)
        moved = [s for s in state["sources"] if s["start"]]
        for s in moved:
            s["start"] = 0
            write_source(a.out, state["seed"], s)
        state["updates"] = 0
        with open(state_path, "w") as f:
            json.dump(state, f)
        print(f"gen: reset {len(moved)} sources")
        return
    if a.update is not None:
        with open(state_path) as f:
            state = json.load(f)
        sources, seed = state["sources"], state["seed"]
        state["updates"] += 1
        r = random.Random(seed * 1000 + state["updates"])
        changed = r.sample(range(len(sources)), max(1, round(a.update * len(sources))))
        total = 0
        for i in changed:
            sources[i]["start"] += r.randint(1, 5)
            total += write_source(a.out, seed, sources[i])
        with open(state_path, "w") as f:
            json.dump(state, f)
        print(f"gen: update {state['updates']}: {len(changed)} sources changed ({total / 1e6:.1f} MB rewritten)")
        return
    if not a.n:
        sys.exit("gen: --n is required unless --update is given")
    os.makedirs(os.path.join(a.out, "feeds"), exist_ok=True)
    sources = plan(a.seed, a.n)
    total = sum(write_source(a.out, a.seed, s) for s in sources)
    write_lists(a.out, a.base_url, sources)
    with open(state_path, "w") as f:
        json.dump({"seed": a.seed, "n": a.n, "base_url": a.base_url, "updates": 0, "sources": sources}, f)
    mix = {k: sum(1 for s in sources if s["format"] == k) for k in RENDER}
    cp = sum(1 for s in sources if s["encoding"] != "utf-8")
    print(f"gen: {a.n} sources, {total / 1e6:.1f} MB, mix {mix}, {cp} in windows-1251, {a.out}")


if __name__ == "__main__":
    main()

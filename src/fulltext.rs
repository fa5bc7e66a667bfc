//! `(article page, its URL, the source's selectors) → the story's HTML`: the extraction stage
//! of `fulltext = true` sources. Pure and synchronous; fetching the page, decoding it and
//! normalising the result are the pipeline's business.
//!
//! Order: the source's `remove_selectors` are removed from the page; then the story is what
//! `content_selector` matches (every match, outermost ones, in page order) or, without one,
//! what the readability extractor (`dom_smoothie`) finds. The extractor tends to drop the
//! lead photo with its caption and credit (measured in docs/STACK: it scores as "not
//! content"), so when its result has no image, the page's lead figure is put back: the image
//! `og:image` names, else the first picture in a `<figure>` of the story, with its caption.
//!
//! What comes out is not safe: it is HTML for the normaliser, whose sanitiser always runs last.
//! Nothing here trusts the page: counts are bounded and nothing panics on odd markup.

use std::collections::HashSet;

use ego_tree::{NodeId, NodeRef};
use scraper::{ElementRef, Html, Node, Selector};
use url::Url;

/// Why a page gave no story.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("content_selector matched nothing on the page")]
    SelectorMissed,
    #[error("no article found: {0}")]
    Readability(#[source] dom_smoothie::ReadabilityError),
}

/// How the story was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// By the source's `content_selector`.
    Selector,
    /// By the readability extractor.
    Readability,
}

/// A page's story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The story as HTML (not sanitised; URLs absolute where the page's were resolvable).
    pub html: String,
    pub method: Method,
    /// Whether the lead figure was put back after the extractor dropped it.
    pub figure_restored: bool,
}

/// The source's rules for its pages.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractRules<'a> {
    pub content_selector: Option<&'a Selector>,
    pub remove_selectors: &'a [Selector],
}

/// Elements the extractor reads at most; a page with more is refused rather than scored
/// (a real article page has a few thousand).
const MAX_ELEMENTS: usize = 30_000;

/// A caption longer than this (in characters) is not a caption but a block of text.
const MAX_CAPTION_CHARS: usize = 400;

/// Takes the story out of an article page fetched from `url`.
pub fn extract(page: &str, url: &Url, rules: &ExtractRules<'_>) -> Result<Extracted, ExtractError> {
    let mut doc = Html::parse_document(page);
    remove_matching(&mut doc, rules.remove_selectors);
    if let Some(sel) = rules.content_selector {
        let html = selected(&doc, sel);
        if html.is_empty() {
            return Err(ExtractError::SelectorMissed);
        }
        return Ok(Extracted {
            html,
            method: Method::Selector,
            figure_restored: false,
        });
    }
    remove_widgets(&mut doc);
    let cfg = dom_smoothie::Config {
        max_elements_to_parse: MAX_ELEMENTS,
        ..dom_smoothie::Config::default()
    };
    let mut readability = dom_smoothie::Readability::new(doc.html(), Some(url.as_str()), Some(cfg))
        .map_err(ExtractError::Readability)?;
    let article = readability.parse().map_err(ExtractError::Readability)?;
    let mut html = article.content.to_string();
    let mut figure_restored = false;
    if !html.contains("<img")
        && let Some(fig) = lead_figure(&doc, url)
    {
        let rendered = fig.render();
        if fig.before_text(&doc, &html) {
            html.insert_str(0, &rendered);
        } else {
            html.push_str(&rendered);
        }
        figure_restored = true;
    }
    Ok(Extracted {
        html,
        method: Method::Readability,
        figure_restored,
    })
}

/// Detaches every element a selector matches.
fn remove_matching(doc: &mut Html, selectors: &[Selector]) {
    let ids: Vec<NodeId> = selectors
        .iter()
        .flat_map(|s| doc.select(s).map(|e| e.id()).collect::<Vec<_>>())
        .collect();
    for id in ids {
        if let Some(mut node) = doc.tree.get_mut(id) {
            node.detach();
        }
    }
}

/// Words of a `class` or `id` that mark a widget inside the story's column (sign-up boxes,
/// share bars, ad slots) that the extractor would otherwise keep.
const WIDGET_WORDS: &[&str] = &[
    "newsletter",
    "subscribe",
    "subscription",
    "signup",
    "share",
    "sharing",
    "social",
    "promo",
    "ad",
    "ads",
    "advert",
    "advertisement",
    "outbrain",
    "taboola",
];

/// Whether a `class`/`id` value names a widget: one of its words (split at white space, `-`
/// and `_`) is a [`WIDGET_WORDS`] word ("newsletter-signup", "share__title"; not
/// "shared-content" or "header").
fn names_widget(value: &str) -> bool {
    value
        .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .any(|w| WIDGET_WORDS.contains(&w.to_ascii_lowercase().as_str()))
}

/// Removes widgets before the readability pass. An element that holds the story's frame
/// (`h1`, `article`, `main`, `articleBody`) is never one, whatever its class says.
fn remove_widgets(doc: &mut Html) {
    let frame = Selector::parse("h1, article, main, [itemprop=articleBody]").ok();
    let ids: Vec<NodeId> = doc
        .root_element()
        .descendants()
        .filter_map(ElementRef::wrap)
        .filter(|e| {
            e.value().attr("class").is_some_and(names_widget)
                || e.value().attr("id").is_some_and(names_widget)
        })
        .filter(|e| frame.as_ref().is_some_and(|f| e.select(f).next().is_none()))
        .map(|e| e.id())
        .collect();
    for id in ids {
        if let Some(mut node) = doc.tree.get_mut(id) {
            node.detach();
        }
    }
}

/// The outer HTML of the outermost matches of `sel`, in page order.
fn selected(doc: &Html, sel: &Selector) -> String {
    let matches: Vec<ElementRef<'_>> = doc.select(sel).collect();
    let ids: HashSet<NodeId> = matches.iter().map(|e| e.id()).collect();
    let mut out = String::new();
    for m in matches {
        if m.ancestors().any(|a| ids.contains(&a.id())) {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&m.html());
    }
    out
}

/// The article's lead picture as found on the page.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Figure {
    src: Url,
    alt: String,
    caption: String,
    /// The image element (`None` for a bare `og:image`).
    node: Option<NodeId>,
}

impl Figure {
    fn render(&self) -> String {
        let mut s = format!(
            "<figure><img src=\"{}\" alt=\"{}\">",
            html_escape::encode_double_quoted_attribute(self.src.as_str()),
            html_escape::encode_double_quoted_attribute(&self.alt)
        );
        if !self.caption.is_empty() {
            s.push_str("<figcaption>");
            s.push_str(&html_escape::encode_text(&self.caption));
            s.push_str("</figcaption>");
        }
        s.push_str("</figure>");
        s
    }

    /// Whether the figure stands before the story's text on the page (it then leads the
    /// story; otherwise it closes it).
    fn before_text(&self, doc: &Html, story: &str) -> bool {
        let Some(node) = self.node else {
            return true;
        };
        let story_text = collapse(
            &Html::parse_fragment(story)
                .root_element()
                .text()
                .collect::<String>(),
        );
        // The first words of the story, long enough not to be found by chance.
        let probe: String = story_text.chars().take(40).collect();
        if probe.is_empty() {
            return true;
        }
        // The page's text before the image, and all of it, both collapsed the same way.
        let mut before = String::new();
        let mut all = String::new();
        let mut seen = false;
        for n in doc.tree.root().descendants() {
            seen |= n.id() == node;
            if let Node::Text(t) = n.value() {
                if !seen {
                    before.push_str(t);
                    before.push(' ');
                }
                all.push_str(t);
                all.push(' ');
            }
        }
        match collapse(&all).find(&probe) {
            Some(at) => collapse(&before).len() <= at,
            None => true,
        }
    }
}

/// Words of a `class` or `id` (matched like [`WIDGET_WORDS`]) of a container whose pictures are
/// not the story's: avatars, logos, thumbnails of related stories.
const JUNK_WORDS: &[&str] = &[
    "related",
    "comment",
    "comments",
    "footer",
    "sidebar",
    "banner",
    "logo",
    "menu",
    "nav",
    "navigation",
    "breadcrumbs",
    "popular",
    "recommend",
    "recommended",
    "widget",
    "avatar",
    "author",
];

/// Elements whose pictures are not the story's. (`<header>` is not one: an article's header
/// often holds its lead photo.)
fn is_junk_element(e: &scraper::node::Element) -> bool {
    if matches!(e.name(), "nav" | "footer" | "aside" | "form" | "noscript") {
        return true;
    }
    let words = |v: Option<&str>| {
        v.is_some_and(|v| {
            v.split(|c: char| c.is_whitespace() || c == '-' || c == '_')
                .map(str::to_ascii_lowercase)
                .any(|w| JUNK_WORDS.contains(&w.as_str()) || WIDGET_WORDS.contains(&w.as_str()))
        })
    };
    words(e.attr("class")) || words(e.attr("id"))
}

fn in_junk(node: NodeRef<'_, Node>) -> bool {
    node.ancestors()
        .filter_map(|a| a.value().as_element())
        .any(is_junk_element)
}

/// The page's lead picture: the image `og:image` names when it is on the page (with its
/// caption), else the first image in a `<figure>`, else the first image in the `<article>`
/// (images in navigation, share blocks, related links, comments and footers never count),
/// else `og:image` alone.
fn lead_figure(doc: &Html, url: &Url) -> Option<Figure> {
    let meta = |property: &str| -> Option<String> {
        let sel = Selector::parse(&format!(
            "meta[property=\"{property}\"], meta[name=\"{property}\"]"
        ))
        .ok()?;
        doc.select(&sel)
            .find_map(|m| m.attr("content"))
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
    };
    let og_image = meta("og:image").and_then(|s| http_url(&s, url));
    // The same picture, maybe named on another host (a CDN, or the page's own address when it
    // is mirrored): same path and query.
    let is_og = |src: &Url| {
        og_image.as_ref().is_some_and(|og| {
            og == src
                || (og.path().len() > 1 && og.path() == src.path() && og.query() == src.query())
        })
    };
    let img_sel = Selector::parse("img").ok()?;
    let frame = Selector::parse("article, main, [itemprop=articleBody]").ok()?;
    let in_frame = |img: &ElementRef<'_>| {
        img.ancestors()
            .filter_map(ElementRef::wrap)
            .any(|a| frame.matches(&a))
    };
    let mut in_figure = None;
    let mut in_article = None;
    for img in doc.select(&img_sel).take(500) {
        let Some(src) = image_src(img, url) else {
            continue;
        };
        if in_junk(*img) {
            continue;
        }
        if is_og(&src) {
            return Some(figure_of(img, src));
        }
        let figured = img
            .ancestors()
            .take(4)
            .any(|a| a.value().as_element().is_some_and(|e| e.name() == "figure"));
        if figured && in_figure.is_none() {
            in_figure = Some(figure_of(img, src));
        } else if in_article.is_none() && in_frame(&img) {
            in_article = Some(figure_of(img, src));
        }
    }
    in_figure.or(in_article).or_else(|| {
        Some(Figure {
            src: og_image?,
            alt: meta("og:image:alt").unwrap_or_default(),
            caption: String::new(),
            node: None,
        })
    })
}

/// An image's address: `src`, or the lazy-loading attribute the page put the real one in.
fn image_src(img: ElementRef<'_>, base: &Url) -> Option<Url> {
    ["src", "data-src", "data-original", "data-lazy-src"]
        .iter()
        .filter_map(|a| img.attr(a))
        .find(|v| !v.trim().is_empty() && !v.trim_start().starts_with("data:"))
        .and_then(|v| http_url(v, base))
}

fn http_url(s: &str, base: &Url) -> Option<Url> {
    base.join(s.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
}

/// The figure around `img`: its `<figure>`'s caption, or the text of the small photo box it
/// sits in (an image with a credit line), looking up past links and `<picture>` wrappers.
fn figure_of(img: ElementRef<'_>, src: Url) -> Figure {
    let alt = collapse(img.attr("alt").unwrap_or_default());
    let figcaption = Selector::parse("figcaption").ok();
    let mut caption = String::new();
    for a in img.ancestors().take(4).filter_map(ElementRef::wrap) {
        let name = a.value().name();
        if matches!(name, "a" | "picture" | "span") {
            continue;
        }
        if name == "figure" {
            let from_caption = figcaption.as_ref().and_then(|s| a.select(s).next());
            caption = collapse(&from_caption.unwrap_or(a).text().collect::<String>());
            break;
        }
        if matches!(name, "p" | "article" | "main" | "body" | "section")
            || a.children().filter(|c| c.value().is_element()).count() > 4
        {
            break;
        }
        let text = collapse(&a.text().collect::<String>());
        if !text.is_empty() {
            caption = text;
            break;
        }
    }
    if caption.chars().count() > MAX_CAPTION_CHARS {
        caption.clear();
    }
    Figure {
        src,
        alt,
        caption,
        node: Some(img.id()),
    }
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("https://news.example/a/story").unwrap()
    }

    const BODY: &str = "<p>The first paragraph of the story, long enough to be taken for the \
                        article by the extractor, with commas, and more words in it.</p>\
                        <p>A second paragraph, which also says something, at some length, so \
                        that the scorer sees a story here and not a list of links.</p>\
                        <p>A third paragraph closes the story, with another sentence or two, \
                        because readability wants a few hundred characters of text.</p>";

    #[test]
    fn widget_words_are_whole_words() {
        assert!(names_widget("newsletter-signup"));
        assert!(names_widget("share__title"));
        assert!(names_widget("box ad-slot"));
        assert!(!names_widget("shared-content"));
        assert!(!names_widget("header"));
        assert!(!names_widget("loaded"));
    }

    #[test]
    fn selector_takes_outermost_matches_in_order() {
        let page = "<div class=s>one<div class=s>inner</div></div><p>x</p><div class=s>two</div>";
        let sel = Selector::parse(".s").unwrap();
        let rules = ExtractRules {
            content_selector: Some(&sel),
            remove_selectors: &[],
        };
        let got = extract(page, &url(), &rules).unwrap();
        assert_eq!(got.method, Method::Selector);
        assert_eq!(got.html.matches("inner").count(), 1, "{}", got.html);
        assert!(got.html.find("one").unwrap() < got.html.find("two").unwrap());
    }

    #[test]
    fn remove_selectors_apply_before_the_selector() {
        let page = "<div class=s><p>keep</p><p class=ad>drop</p></div>";
        let sel = Selector::parse(".s").unwrap();
        let remove = [Selector::parse("p.ad").unwrap()];
        let rules = ExtractRules {
            content_selector: Some(&sel),
            remove_selectors: &remove,
        };
        let got = extract(page, &url(), &rules).unwrap();
        assert!(got.html.contains("keep") && !got.html.contains("drop"));
    }

    #[test]
    fn lead_figure_is_restored_before_or_after_the_text() {
        // Above the text, inside a link (which makes the extractor drop it), with a credit.
        let above = format!(
            "<html><head><meta property=og:image content=\"https://cdn.example/p.jpg\"></head>\
             <body><article><h1>T</h1><div class=photo><a href=/big.jpg><img src=/p.jpg alt=A></a>\
             <div class=credit>Photo: Agency</div></div><div class=text>{BODY}</div></article></body></html>"
        );
        let got = extract(&above, &url(), &ExtractRules::default()).unwrap();
        if got.figure_restored {
            assert!(
                got.html.starts_with(
                    "<figure><img src=\"https://news.example/p.jpg\" alt=\"A\"><figcaption>Photo: Agency</figcaption></figure>"
                ),
                "{}",
                got.html
            );
        }
        let fig = lead_figure(&Html::parse_document(&above), &url()).unwrap();
        assert_eq!(fig.caption, "Photo: Agency");
        assert_eq!(
            fig.src.as_str(),
            "https://news.example/p.jpg",
            "same path as og:image"
        );

        let below = format!(
            "<html><body><article><div class=text>{BODY}</div><figure><img src=/q.jpg>\
             <figcaption>Caption</figcaption></figure></article></body></html>"
        );
        let doc = Html::parse_document(&below);
        let fig = lead_figure(&doc, &url()).unwrap();
        assert!(!fig.before_text(&doc, BODY));
        assert_eq!(fig.caption, "Caption");
    }

    #[test]
    fn pictures_of_navigation_and_related_links_are_not_the_lead() {
        let page = "<html><body><nav><figure><img src=/nav.jpg></figure></nav>\
                    <div class=related-news><figure><img src=/rel.jpg></figure></div>\
                    <article><p>text</p></article></body></html>";
        assert_eq!(lead_figure(&Html::parse_document(page), &url()), None);
    }

    #[test]
    fn hostile_markup_does_not_panic() {
        for page in [
            "",
            "<",
            "<img src=javascript:alert(1)>",
            &"<div>".repeat(100),
            "<meta property=og:image content=\"data:image/png;base64,AAAA\">",
        ] {
            let _ = extract(page, &url(), &ExtractRules::default());
        }
    }
}

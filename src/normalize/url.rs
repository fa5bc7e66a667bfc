//! Links: resolve against the base in force, keep http(s) only, drop tracking parameters.

use url::Url;

/// Query parameters that only track the reader (exact names; `utm_*` by prefix).
const TRACKING: &[&str] = &[
    "fbclid",
    "gclid",
    "dclid",
    "gbraid",
    "wbraid",
    "yclid",
    "ysclid",
    "mc_cid",
    "mc_eid",
    "_openstat",
    "igshid",
    "msclkid",
    "_hsenc",
    "_hsmi",
    "mkt_tok",
    "oly_anon_id",
    "oly_enc_id",
    "vero_id",
    "rb_clickid",
    "s_cid",
    "twclid",
    "ttclid",
    "si",
];

fn is_tracking(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.starts_with("utm_") || TRACKING.contains(&k.as_str())
}

/// Resolves `href` against `base` (when relative) and returns it cleaned, or `None` when it is
/// not an http(s) URL.
pub fn absolute(href: &str, base: Option<&Url>) -> Option<Url> {
    let href = href.trim();
    if href.is_empty() {
        return None;
    }
    let url = match Url::parse(href) {
        Ok(u) => u,
        Err(url::ParseError::RelativeUrlWithoutBase) => base?.join(href).ok()?,
        Err(_) => return None,
    };
    matches!(url.scheme(), "http" | "https").then(|| strip_tracking(url))
}

/// Removes tracking parameters; the rest of the query keeps its order.
pub fn strip_tracking(mut url: Url) -> Url {
    if url.query().is_none() {
        return url;
    }
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !is_tracking(k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let all = url.query_pairs().count();
    if kept.len() == all {
        return url;
    }
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_tracking_and_resolves() {
        let base = Url::parse("https://ex.kz/news/").unwrap();
        let u = absolute(
            "2025/a?id=7&utm_source=rss&utm_medium=feed&fbclid=x",
            Some(&base),
        )
        .unwrap();
        assert_eq!(u.as_str(), "https://ex.kz/news/2025/a?id=7");
        let u = absolute("https://ex.kz/a?utm_campaign=x#p2", None).unwrap();
        assert_eq!(u.as_str(), "https://ex.kz/a#p2");
        assert_eq!(absolute("javascript:alert(1)", Some(&base)), None);
        assert_eq!(absolute("/rel", None), None);
    }
}

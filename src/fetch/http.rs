//! HTTP(S) with reqwest: conditional GET (`If-None-Match`, `If-Modified-Since`), gzip/br/deflate,
//! a total timeout (over all redirects), a cap on the decoded body (counted while streaming, so a
//! compression bomb stops at the cap), redirects followed here rather than by reqwest (capped,
//! never https to http, never to a non-http scheme; each hop's status tells a permanent move
//! from a temporary one), and a guard that refuses loopback, private and link-local addresses
//! (also after redirects and DNS) unless `allow_private_networks` is set.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Once};
use std::time::Duration;

use reqwest::header::{
    AGE, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, DATE, ETAG, EXPIRES, HeaderMap,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, LOCATION, RETRY_AFTER,
};
use reqwest::{StatusCode, redirect};
use url::{Host, Url};

use super::{FetchError, FetchOutcome, Fetched, Hints, Validators};
use crate::config::Settings;

#[derive(Clone)]
pub struct HttpFetcher {
    client: reqwest::Client,
    allow_private: bool,
    max_body_bytes: u64,
    max_redirects: usize,
    timeout: Duration,
}

/// True for addresses a public feed never lives on: loopback, private, link-local, CGNAT,
/// unspecified, multicast, documentation and unique-local ranges.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || o[0] == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

fn private_literal(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => is_private(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => is_private(IpAddr::V6(ip)),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost"),
        None => true,
    }
}

/// Resolves `host` on a thread of its own. Not on the runtime's blocking pool: that pool is kept
/// small (`cli::main`), and a name server that does not answer holds a lookup for seconds, which
/// would leave documents waiting to be parsed and other lookups waiting behind it.
pub async fn lookup(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    use std::net::ToSocketAddrs;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let target = (host.to_string(), port);
    std::thread::Builder::new()
        .name("feedloom-dns".into())
        .spawn(move || {
            // The fetch may have given up (timeout): then nobody is waiting for the answer.
            let _ = tx.send(target.to_socket_addrs().map(Iterator::collect));
        })?;
    rx.await
        .map_err(|_| std::io::Error::other("the name lookup ended without an answer"))?
}

/// The HTTP client's resolver ([`lookup`]); with `public_only` it drops private addresses, so a
/// public name pointing at 127.0.0.1 is refused.
struct Resolver {
    public_only: bool,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let public_only = self.public_only;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = lookup(&host, 0)
                .await?
                .into_iter()
                .filter(|a| !public_only || !is_private(a.ip()))
                .collect();
            if addrs.is_empty() {
                let why = if public_only {
                    "resolves only to private or loopback addresses \
                     (set settings.allow_private_networks = true to allow them)"
                } else {
                    "resolves to no address"
                };
                return Err(format!("{host} {why}").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only when another provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Whether the `hops`-th redirect, from `prev` to `next`, may be followed: at most
/// `max_redirects`, only to http(s), never from https to http, never to a private or loopback
/// address literal unless `allow_private` (names are checked when they resolve).
fn check_redirect(
    prev: &Url,
    next: &Url,
    hops: usize,
    max_redirects: usize,
    allow_private: bool,
) -> Result<(), String> {
    if hops > max_redirects {
        Err(format!("more than {max_redirects} redirects"))
    } else if !matches!(next.scheme(), "http" | "https") {
        Err(format!("redirect to a {} URL", next.scheme()))
    } else if prev.scheme() == "https" && next.scheme() == "http" {
        Err("redirect from https to http".into())
    } else if !allow_private && private_literal(next) {
        Err("redirect to a private or loopback address".into())
    } else {
        Ok(())
    }
}

impl HttpFetcher {
    pub fn new(settings: &Settings) -> Result<HttpFetcher, FetchError> {
        install_crypto_provider();
        let allow_private = settings.allow_private_networks;
        // Redirects are followed by `fetch` itself, which must see each hop's status to tell a
        // permanent move (301/308) from a temporary one.
        let mut builder = reqwest::Client::builder()
            .user_agent(settings.user_agent.clone())
            .timeout(settings.fetch_timeout)
            .connect_timeout(settings.fetch_timeout.min(Duration::from_secs(10)))
            .redirect(redirect::Policy::none())
            .gzip(true)
            .brotli(true)
            .deflate(true)
            .tcp_nodelay(true)
            // As many idle connections as a host may have requests at once: with fewer, each
            // request beyond them opens a new connection (one host serving many feeds answered
            // 1,000 304s over 604 connections with 4 kept).
            .pool_max_idle_per_host(settings.per_host_concurrency.max(4));
        builder = builder.dns_resolver(Arc::new(Resolver {
            public_only: !allow_private,
        }));
        let client = builder.build().map_err(|source| FetchError::Network {
            url: String::new(),
            source,
        })?;
        Ok(HttpFetcher {
            client,
            allow_private,
            max_body_bytes: settings.max_body_bytes,
            max_redirects: settings.max_redirects,
            timeout: settings.fetch_timeout,
        })
    }

    /// Fetches `url` (following redirects), all of it within `fetch_timeout`.
    pub async fn fetch(&self, url: &Url, old: &Validators) -> Result<FetchOutcome, FetchError> {
        tokio::time::timeout(self.timeout, self.fetch_following(url, old))
            .await
            .unwrap_or_else(|_| {
                Err(FetchError::Timeout {
                    url: url.to_string(),
                    seconds: self.timeout.as_secs(),
                })
            })
    }

    async fn fetch_following(
        &self,
        url: &Url,
        old: &Validators,
    ) -> Result<FetchOutcome, FetchError> {
        if !self.allow_private && private_literal(url) {
            return Err(FetchError::Refused {
                url: url.to_string(),
                reason: "private or loopback address (set settings.allow_private_networks = true \
                         to allow it)"
                    .into(),
            });
        }
        let net = |source: reqwest::Error| self.map_error(url, source);
        let mut current = url.clone();
        let mut hops = 0;
        // The end of the leading run of permanent redirects; a temporary one ends the run.
        let mut permanent: Option<Url> = None;
        let mut only_permanent = true;
        let mut resp = loop {
            let mut req = self.client.get(current.clone());
            if let Some(etag) = &old.etag {
                req = req.header(IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &old.last_modified {
                req = req.header(IF_MODIFIED_SINCE, lm);
            }
            let resp = req.send().await.map_err(net)?;
            let status = resp.status();
            let follow = matches!(
                status,
                StatusCode::MOVED_PERMANENTLY
                    | StatusCode::FOUND
                    | StatusCode::SEE_OTHER
                    | StatusCode::TEMPORARY_REDIRECT
                    | StatusCode::PERMANENT_REDIRECT
            );
            // A redirect without a Location is the answer (and fails as a status below).
            let Some(target) = header(resp.headers(), LOCATION).filter(|_| follow) else {
                break resp;
            };
            let refused = |reason: String| FetchError::Refused {
                url: url.to_string(),
                reason,
            };
            let next = current
                .join(&target)
                .map_err(|e| refused(format!("redirect to {target:?}: {e}")))?;
            hops += 1;
            check_redirect(
                &current,
                &next,
                hops,
                self.max_redirects,
                self.allow_private,
            )
            .map_err(refused)?;
            // RFC 9110 §15.4.2, §15.4.9: only 301 and 308 say the resource moved for good.
            if only_permanent
                && matches!(
                    status,
                    StatusCode::MOVED_PERMANENTLY | StatusCode::PERMANENT_REDIRECT
                )
            {
                permanent = Some(next.clone());
            } else {
                only_permanent = false;
            }
            current = next;
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let validators = Validators {
            etag: header(&headers, ETAG),
            last_modified: header(&headers, LAST_MODIFIED),
        };
        let hints = Hints {
            permanent_redirect: permanent.map(String::from),
            fresh_for: fresh_for(&headers, chrono::Utc::now()),
        };
        if status == StatusCode::NOT_MODIFIED {
            // A 304 need not repeat the validators; keep the ones we sent.
            let validators = if validators.is_empty() {
                old.clone()
            } else {
                validators
            };
            return Ok(FetchOutcome::NotModified { validators, hints });
        }
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.to_string(),
                code: status.as_u16(),
                retry_after: header(&headers, RETRY_AFTER).and_then(|v| parse_retry_after(&v)),
            });
        }
        let final_url = current.to_string();
        let too_large = || FetchError::TooLarge {
            url: url.to_string(),
            limit: self.max_body_bytes,
        };
        // Content-Length counts encoded bytes; it is only a first, cheap check.
        if let Some(len) = header(&headers, CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok())
            && len > self.max_body_bytes
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(net)? {
            if (body.len() + chunk.len()) as u64 > self.max_body_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(FetchOutcome::Modified(Fetched {
            body: body.into(),
            content_type: header(&headers, CONTENT_TYPE),
            final_location: final_url,
            validators,
            status: status.as_u16(),
            hints,
        }))
    }

    fn map_error(&self, url: &Url, source: reqwest::Error) -> FetchError {
        if source.is_timeout() {
            FetchError::Timeout {
                url: url.to_string(),
                seconds: self.timeout.as_secs(),
            }
        } else {
            FetchError::Network {
                url: url.to_string(),
                source,
            }
        }
    }
}

fn header(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `Retry-After` as seconds: a number of seconds or an HTTP date (RFC 9110 §10.2.3).
/// Malformed values give `None`.
pub fn parse_retry_after(v: &str) -> Option<u64> {
    if let Ok(n) = v.trim().parse::<u64>() {
        return Some(n);
    }
    let when = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    let secs = (when.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    Some(secs.max(0) as u64)
}

/// Seconds a response stays fresh by its own headers (RFC 9111 §4.2.1): `Cache-Control: max-age`
/// less `Age`, else `Expires` less `Date` (or less `now` without a usable `Date`). `None` when
/// `no-cache` or `no-store` forbid reuse, when neither header says, or when it is already stale.
pub fn fresh_for(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<u64> {
    let http_date = |name| {
        header(headers, name)
            .and_then(|v| chrono::DateTime::parse_from_rfc2822(&v).ok())
            .map(|d| d.with_timezone(&chrono::Utc))
    };
    let mut max_age = None;
    for value in headers.get_all(CACHE_CONTROL) {
        for directive in value.to_str().unwrap_or_default().split(',') {
            let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
            match name.trim().to_ascii_lowercase().as_str() {
                "no-cache" | "no-store" => return None,
                "max-age" => max_age = arg.trim().trim_matches('"').parse::<u64>().ok(),
                _ => {}
            }
        }
    }
    let secs = match max_age {
        Some(m) => {
            let age = header(headers, AGE).and_then(|v| v.parse::<u64>().ok());
            m.saturating_sub(age.unwrap_or(0))
        }
        None => {
            // An invalid Expires ("0", "-1") means already expired (§5.3).
            let expires = http_date(EXPIRES)?;
            let date = http_date(DATE).unwrap_or(now);
            (expires - date).num_seconds().max(0) as u64
        }
    };
    (secs > 0).then_some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names resolve off the runtime's blocking pool, even with that pool at one thread that is
    /// busy; a public-only resolver refuses a name that resolves to loopback.
    #[test]
    fn lookups_run_beside_a_busy_blocking_pool() {
        use reqwest::dns::Resolve;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (release, held) = std::sync::mpsc::channel::<()>();
            let busy = tokio::task::spawn_blocking(move || held.recv());
            let addrs =
                tokio::time::timeout(std::time::Duration::from_secs(10), lookup("localhost", 80))
                    .await
                    .expect("a lookup waiting for the blocking pool")
                    .unwrap();
            assert!(
                !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80)
            );
            let name = || "localhost".parse::<reqwest::dns::Name>().unwrap();
            let refused = Resolver { public_only: true }.resolve(name()).await;
            assert!(refused.is_err_and(|e| e.to_string().contains("private or loopback")));
            assert!(
                Resolver { public_only: false }
                    .resolve(name())
                    .await
                    .is_ok()
            );
            release.send(()).unwrap();
            busy.await.unwrap().unwrap();
        });
    }

    #[test]
    fn private_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120"), Some(120));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(0));
        assert_eq!(parse_retry_after("soon"), None);
        let later = (chrono::Utc::now() + chrono::Duration::days(2))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let secs = parse_retry_after(&later).unwrap();
        assert!((172_700..=172_800).contains(&secs), "{later}: {secs}");
    }

    #[test]
    fn redirect_checks() {
        let u = |s: &str| Url::parse(s).unwrap();
        let ok = |p, n, hops, max, private| check_redirect(&u(p), &u(n), hops, max, private);
        assert_eq!(
            ok("https://a.org/f", "https://b.org/f", 1, 5, false),
            Ok(())
        );
        assert_eq!(ok("http://a.org/f", "https://a.org/f", 5, 5, false), Ok(()));
        assert!(
            ok("http://a.org/f", "http://a.org/g", 6, 5, false)
                .unwrap_err()
                .contains("more than 5")
        );
        assert!(ok("http://a.org/f", "http://a.org/g", 1, 0, false).is_err());
        assert!(
            ok("https://a.org/f", "http://a.org/f", 1, 5, true)
                .unwrap_err()
                .contains("https to http")
        );
        assert!(
            ok("http://a.org/f", "file:///etc/passwd", 1, 5, true)
                .unwrap_err()
                .contains("file URL")
        );
        assert!(
            ok("http://a.org/f", "http://127.0.0.1/f", 1, 5, false)
                .unwrap_err()
                .contains("private")
        );
        assert!(ok("http://a.org/f", "http://[::1]/f", 1, 5, false).is_err());
        assert!(ok("http://a.org/f", "http://localhost/f", 1, 5, false).is_err());
        assert_eq!(
            ok("http://a.org/f", "http://127.0.0.1/f", 1, 5, true),
            Ok(())
        );
    }

    #[test]
    fn freshness_from_headers() {
        let now = chrono::DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(*k, v.parse().unwrap());
            }
            fresh_for(&m, now)
        };
        assert_eq!(h(&[]), None);
        assert_eq!(h(&[("cache-control", "public, max-age=600")]), Some(600));
        assert_eq!(h(&[("cache-control", "max-age=\"600\"")]), Some(600));
        assert_eq!(
            h(&[("cache-control", "max-age=600"), ("age", "100")]),
            Some(500)
        );
        assert_eq!(h(&[("cache-control", "max-age=0")]), None);
        assert_eq!(h(&[("cache-control", "no-cache, max-age=600")]), None);
        assert_eq!(
            h(&[
                ("cache-control", "max-age=60"),
                ("cache-control", "no-store")
            ]),
            None
        );
        // max-age wins over Expires (RFC 9111 §5.3).
        let expires = ("expires", "Sun, 01 Jun 2025 14:00:00 GMT");
        assert_eq!(h(&[("cache-control", "max-age=60"), expires]), Some(60));
        assert_eq!(h(&[expires]), Some(7200));
        assert_eq!(
            h(&[expires, ("date", "Sun, 01 Jun 2025 13:00:00 GMT")]),
            Some(3600)
        );
        assert_eq!(h(&[("expires", "0")]), None);
        assert_eq!(h(&[("expires", "Sun, 01 Jun 2025 11:00:00 GMT")]), None);
    }
}

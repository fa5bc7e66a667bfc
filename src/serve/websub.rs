//! WebSub (W3C Recommendation, 2018-01-23), both sides.
//!
//! Publisher: after a publish changed a feed's bytes, [`ping`] tells each configured hub
//! (`hub.mode=publish`, `hub.url=<feed>`), the form most hubs take (the Recommendation leaves
//! the publisher-to-hub step open).
//!
//! Subscriber: [`discover`] finds a source's `rel="hub"` and `rel="self"` links; [`subscribe`]
//! asks the hub for a subscription with a secret; [`Subscriber`] keeps the subscriptions (in
//! memory: after a restart they are requested again), answers the hub's verification of
//! intent (§5.3) and checks the `X-Hub-Signature` of every push (§8) before the daemon
//! refreshes the source.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use url::Url;

use super::metrics::Metrics;

/// The lease we ask hubs for (they may grant another; the verification says which).
pub const LEASE: Duration = Duration::from_secs(10 * 86_400);
/// A requested subscription not verified within this is requested again.
const VERIFY_WAIT: Duration = Duration::from_secs(600);
/// How long to wait before looking again at a source without a hub, or after a failure.
const RECHECK: Duration = Duration::from_secs(86_400);
const RETRY: Duration = Duration::from_secs(3600);

/// Tells every hub that these feeds changed. Failures are logged and counted, never fatal.
pub async fn ping(client: &reqwest::Client, hubs: &[Url], feeds: &[String], metrics: &Metrics) {
    for hub in hubs {
        for feed in feeds {
            let form = [("hub.mode", "publish"), ("hub.url", feed.as_str())];
            match post_form(client, hub, &form).await {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(hub = %hub, feed = %feed, "websub: hub notified");
                    metrics.websub_ping("ok");
                }
                Ok(r) => {
                    tracing::warn!(hub = %hub, feed = %feed, status = r.status().as_u16(),
                                   "websub: hub refused the publish notification");
                    metrics.websub_ping("refused");
                }
                Err(e) => {
                    tracing::warn!(hub = %hub, feed = %feed, error = %e, "websub: hub unreachable");
                    metrics.websub_ping("error");
                }
            }
        }
    }
}

/// POSTs `application/x-www-form-urlencoded` (§5.1; reqwest's `form` feature is off).
async fn post_form(
    client: &reqwest::Client,
    hub: &Url,
    form: &[(&str, &str)],
) -> reqwest::Result<reqwest::Response> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    client
        .post(hub.clone())
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
}

/// The hub and self links a feed document advertises (§4: `<link rel="hub">` in Atom and RSS
/// (`atom:link`), `hubs` in JSON Feed).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Discovered {
    pub hub: Option<Url>,
    pub topic: Option<Url>,
}

pub fn discover(body: &[u8]) -> Discovered {
    let mut found = Discovered::default();
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    if start.is_some_and(|i| body[i] == b'{') {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            return found;
        };
        found.topic = v["feed_url"].as_str().and_then(|s| Url::parse(s).ok());
        found.hub = v["hubs"].as_array().and_then(|hubs| {
            hubs.iter()
                .filter(|h| {
                    h["type"]
                        .as_str()
                        .is_none_or(|t| t.eq_ignore_ascii_case("websub"))
                })
                .find_map(|h| h["url"].as_str().and_then(|s| Url::parse(s).ok()))
        });
        return found;
    }
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut buf = Vec::new();
    let mut depth = 0usize;
    loop {
        let ev = reader.read_event_into(&mut buf);
        let e = match ev {
            Ok(quick_xml::events::Event::Start(e)) => {
                depth += 1;
                e
            }
            Ok(quick_xml::events::Event::Empty(e)) => e,
            Ok(quick_xml::events::Event::End(_)) => {
                depth = depth.saturating_sub(1);
                buf.clear();
                continue;
            }
            Ok(quick_xml::events::Event::Eof) | Err(_) => break,
            Ok(_) => {
                buf.clear();
                continue;
            }
        };
        // Feed-level links sit at depth 1 (Atom feed) or 2 (RSS channel); items' are deeper.
        if e.local_name().as_ref() == b"link" && depth <= 2 {
            let attr = |name: &[u8]| {
                e.attributes()
                    .flatten()
                    .find(|a| a.key.local_name().as_ref() == name)
                    .and_then(|a| {
                        a.decoded_and_normalized_value(
                            quick_xml::XmlVersion::Implicit1_0,
                            reader.decoder(),
                        )
                        .ok()
                        .map(|v| v.into_owned())
                    })
            };
            let href = attr(b"href").and_then(|h| Url::parse(h.trim()).ok());
            match attr(b"rel").as_deref().map(str::trim) {
                Some("hub") if found.hub.is_none() => found.hub = href,
                Some("self") if found.topic.is_none() => found.topic = href,
                _ => {}
            }
        }
        if e.local_name().as_ref() == b"item" || e.local_name().as_ref() == b"entry" {
            break;
        }
        buf.clear();
    }
    found
}

/// Asks `hub` to subscribe `callback` to `topic` (§5.1). Ok when the hub accepted the request
/// (it then verifies our intent with a GET to the callback).
pub async fn subscribe(
    client: &reqwest::Client,
    hub: &Url,
    topic: &str,
    callback: &str,
    secret: &str,
) -> Result<(), String> {
    let lease = LEASE.as_secs().to_string();
    let form = [
        ("hub.callback", callback),
        ("hub.mode", "subscribe"),
        ("hub.topic", topic),
        ("hub.secret", secret),
        ("hub.lease_seconds", lease.as_str()),
    ];
    match post_form(client, hub, &form).await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("hub {hub} answered {}", r.status().as_u16())),
        Err(e) => Err(format!("hub {hub}: {e}")),
    }
}

/// A random secret for one subscription: 32 bytes from the OS, hex.
pub fn new_secret() -> Option<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).ok()?;
    Some(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The source advertises no hub (looked at again after a day).
    NoHub,
    /// Asked the hub; waiting for its verification GET.
    Requested,
    /// Verified: pushes are accepted until the lease ends.
    Active,
    /// The hub denied the subscription (§5.2).
    Denied,
    /// Discovery or the request failed.
    Failed,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::NoHub => "no_hub",
            State::Requested => "requested",
            State::Active => "active",
            State::Denied => "denied",
            State::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Subscription {
    pub hub: Option<Url>,
    pub topic: String,
    pub secret: String,
    pub state: State,
    /// When the daemon should look at this subscription again (renew, retry, rediscover).
    pub next_action: Instant,
}

/// The answer to a push.
#[derive(Debug, PartialEq, Eq)]
pub enum Push {
    /// Signed with our secret: refresh the source.
    Valid,
    /// Missing or wrong signature: acknowledged (§8 says so) but ignored.
    BadSignature,
    /// No verified subscription for this source.
    Unknown,
}

/// The daemon's subscriptions, by source name.
#[derive(Debug, Default)]
pub struct Subscriber {
    subs: Mutex<HashMap<String, Subscription>>,
}

impl Subscriber {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Subscription>) -> T) -> T {
        let mut g = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// The sources (among `names`) whose subscription needs work now; forgets sources no
    /// longer configured.
    pub fn due(&self, names: &[String], now: Instant) -> Vec<String> {
        self.with(|m| {
            m.retain(|k, _| names.contains(k));
            names
                .iter()
                .filter(|n| m.get(*n).is_none_or(|s| s.next_action <= now))
                .cloned()
                .collect()
        })
    }

    pub fn set(&self, source: &str, sub: Subscription) {
        self.with(|m| m.insert(source.to_string(), sub));
    }

    /// Notes that discovery found no hub, or that something failed.
    pub fn set_state(&self, source: &str, state: State, now: Instant) {
        let wait = if state == State::NoHub {
            RECHECK
        } else {
            RETRY
        };
        self.with(|m| {
            m.insert(
                source.to_string(),
                Subscription {
                    hub: None,
                    topic: String::new(),
                    secret: String::new(),
                    state,
                    next_action: now + wait,
                },
            )
        });
    }

    /// Notes that a subscription request is about to be sent and returns the secret to send:
    /// a renewal of an active subscription to the same hub and topic keeps its secret and its
    /// state (pushes signed with it stay valid meanwhile); anything else gets a new secret and
    /// waits for verification for at most [`VERIFY_WAIT`].
    pub fn request(&self, source: &str, hub: Url, topic: String, now: Instant) -> Option<String> {
        self.with(|m| {
            if let Some(s) = m.get_mut(source)
                && s.state == State::Active
                && s.hub.as_ref() == Some(&hub)
                && s.topic == topic
            {
                s.next_action = now + VERIFY_WAIT;
                return Some(s.secret.clone());
            }
            let secret = new_secret()?;
            m.insert(
                source.to_string(),
                Subscription {
                    hub: Some(hub),
                    topic,
                    secret: secret.clone(),
                    state: State::Requested,
                    next_action: now + VERIFY_WAIT,
                },
            );
            Some(secret)
        })
    }

    /// Answers the hub's verification of intent (§5.3): the challenge to echo, or `None`
    /// (answered 404) when we did not ask for this.
    pub fn verify(&self, source: &str, query: &HashMap<String, String>) -> Option<String> {
        let now = Instant::now();
        let mode = query.get("hub.mode").map(String::as_str);
        let topic = query.get("hub.topic").map(String::as_str);
        self.with(|m| {
            let sub = m.get_mut(source)?;
            if Some(sub.topic.as_str()) != topic {
                return None;
            }
            match mode {
                Some("subscribe") if matches!(sub.state, State::Requested | State::Active) => {
                    let challenge = query.get("hub.challenge")?.clone();
                    let lease = query
                        .get("hub.lease_seconds")
                        .and_then(|s| s.parse::<u64>().ok())
                        .map_or(LEASE, Duration::from_secs);
                    sub.state = State::Active;
                    // Renew when four fifths of the lease have passed.
                    sub.next_action = now + lease.mul_f64(0.8);
                    tracing::info!(source, hub = ?sub.hub.as_ref().map(Url::as_str),
                                   lease_s = lease.as_secs(), "websub: subscription verified");
                    Some(challenge)
                }
                Some("denied") => {
                    tracing::warn!(source, reason = ?query.get("hub.reason"),
                                   "websub: the hub denied the subscription");
                    sub.state = State::Denied;
                    sub.next_action = now + RECHECK;
                    Some(String::new())
                }
                _ => None,
            }
        })
    }

    /// Checks a push's `X-Hub-Signature` against the subscription's secret (§8).
    pub fn push(&self, source: &str, signature: Option<&str>, body: &[u8]) -> Push {
        self.with(|m| match m.get(source) {
            Some(s) if s.state == State::Active => {
                if signature.is_some_and(|sig| signed(s.secret.as_bytes(), sig, body)) {
                    Push::Valid
                } else {
                    Push::BadSignature
                }
            }
            _ => Push::Unknown,
        })
    }

    /// How many subscriptions are in each state (for `/metrics`).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.with(|m| {
            let mut out = BTreeMap::new();
            for s in m.values() {
                *out.entry(s.state.as_str().to_string()).or_default() += 1;
            }
            out
        })
    }
}

/// True when `header` (`sha256=<hex>`) is the HMAC of `body` under `secret`. §8 allows sha1,
/// sha256, sha384 and sha512. The comparison is constant-time (`verify_slice`).
pub fn signed(secret: &[u8], header: &str, body: &[u8]) -> bool {
    let Some((alg, hex)) = header.trim().split_once('=') else {
        return false;
    };
    let Some(sig) = from_hex(hex) else {
        return false;
    };
    fn check<M: Mac + hmac::digest::KeyInit>(secret: &[u8], body: &[u8], sig: &[u8]) -> bool {
        match <M as hmac::digest::KeyInit>::new_from_slice(secret) {
            Ok(mut m) => {
                m.update(body);
                m.verify_slice(sig).is_ok()
            }
            Err(_) => false,
        }
    }
    match alg.to_ascii_lowercase().as_str() {
        "sha1" => check::<Hmac<sha1::Sha1>>(secret, body, &sig),
        "sha256" => check::<Hmac<sha2::Sha256>>(secret, body, &sig),
        "sha384" => check::<Hmac<sha2::Sha384>>(secret, body, &sig),
        "sha512" => check::<Hmac<sha2::Sha512>>(secret, body, &sig),
        _ => false,
    }
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac_hex<M: Mac + hmac::digest::KeyInit>(key: &[u8], body: &[u8]) -> String {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).unwrap();
        m.update(body);
        m.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn signatures() {
        let sig1 = hmac_hex::<Hmac<sha1::Sha1>>(b"k", b"body");
        let sig256 = hmac_hex::<Hmac<sha2::Sha256>>(b"k", b"body");
        assert!(signed(b"k", &format!("sha1={sig1}"), b"body"));
        assert!(signed(b"k", &format!("sha256={sig256}"), b"body"));
        assert!(!signed(b"k", &format!("sha256={sig1}"), b"body"));
        assert!(!signed(b"other", &format!("sha1={sig1}"), b"body"));
        assert!(!signed(b"k", &format!("sha1={sig1}"), b"bodY"));
        assert!(!signed(b"k", "md5=00", b"body"));
        assert!(!signed(b"k", "sha1=zz", b"body"));
    }

    #[test]
    fn discovers_hub_and_self() {
        let atom = br#"<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">
            <link rel="self" href="https://example.org/feed.atom"/>
            <link rel="hub" href="https://hub.example.org/"/>
            <entry><link rel="hub" href="https://wrong.example/"/></entry></feed>"#;
        let d = discover(atom);
        assert_eq!(d.hub.unwrap().as_str(), "https://hub.example.org/");
        assert_eq!(d.topic.unwrap().as_str(), "https://example.org/feed.atom");
        let rss = br#"<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>
            <atom:link rel="hub" href="http://h/"/><item><title>x</title></item></channel></rss>"#;
        assert_eq!(discover(rss).hub.unwrap().as_str(), "http://h/");
        let json = br#"{"version":"https://jsonfeed.org/version/1.1","feed_url":"https://e/f.json",
            "hubs":[{"type":"WebSub","url":"https://hub/"}],"items":[]}"#;
        let d = discover(json);
        assert_eq!(d.hub.unwrap().as_str(), "https://hub/");
        assert_eq!(d.topic.unwrap().as_str(), "https://e/f.json");
        assert_eq!(
            discover(b"<rss><channel></channel></rss>"),
            Discovered::default()
        );
    }

    #[test]
    fn verification_needs_our_request_and_topic() {
        let s = Subscriber::default();
        let now = Instant::now();
        let q = |mode: &str, topic: &str| -> HashMap<String, String> {
            [
                ("hub.mode", mode),
                ("hub.topic", topic),
                ("hub.challenge", "c1"),
                ("hub.lease_seconds", "60"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        assert_eq!(s.verify("a", &q("subscribe", "t")), None);
        let sec = s
            .request("a", Url::parse("http://h/").unwrap(), "t".into(), now)
            .unwrap();
        assert_eq!(s.push("a", None, b""), Push::Unknown, "not verified yet");
        assert_eq!(s.verify("a", &q("subscribe", "other")), None);
        assert_eq!(s.verify("a", &q("unsubscribe", "t")), None);
        assert_eq!(s.verify("a", &q("subscribe", "t")).as_deref(), Some("c1"));
        assert_eq!(s.push("a", Some("sha1=00"), b"x"), Push::BadSignature);
        let good = format!(
            "sha1={}",
            hmac_hex::<Hmac<sha1::Sha1>>(sec.as_bytes(), b"x")
        );
        assert_eq!(s.push("a", Some(&good), b"x"), Push::Valid);
        let renew = s.request("a", Url::parse("http://h/").unwrap(), "t".into(), now);
        assert_eq!(renew, Some(sec), "a renewal keeps the secret");
        assert_eq!(
            s.push("a", Some(&good), b"x"),
            Push::Valid,
            "and stays active"
        );
        assert!(s.verify("a", &q("subscribe", "t")).is_some());
        assert!(s.due(&["a".into()], now).is_empty());
        assert_eq!(
            s.due(&["a".into()], now + Duration::from_secs(49)),
            vec!["a".to_string()]
        );
    }
}

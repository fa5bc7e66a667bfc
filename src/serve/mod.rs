//! HTTP for `feedloom serve` (docs/contracts.md, HTTP): the output folder from memory, plus
//! `/healthz`, `/metrics` and the WebSub callback.
//!
//! Files come from a [`Site`] that the scheduler swaps in after each publish (an `ArcSwap`, so
//! a request sees one whole version). Every answer is precomputed: bytes, gzip and br variants,
//! strong ETags and Last-Modified; a request only picks one (STACK.md, gotcha 13: that and
//! TCP_NODELAY is what makes this as fast as nginx). It never touches the store.

pub mod metrics;
pub mod site;
pub mod websub;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::mpsc;

pub use metrics::Metrics;
pub use site::Site;

/// Settings the HTTP side reads on every request; replaced on a config reload.
#[derive(Debug)]
pub struct Live {
    pub cache_control: HeaderValue,
    /// `/healthz` answers 503 when the last good refresh is older than this.
    pub health_max_age: Duration,
}

impl Live {
    pub fn new(default_interval: Duration, health_max_age: Duration) -> Live {
        // A reader may keep a copy for one refresh interval: nothing newer can appear sooner
        // (WebSub pushes reach subscribers that want it faster).
        let secs = default_interval.as_secs().clamp(1, 86_400);
        Live {
            cache_control: HeaderValue::from_str(&format!("public, max-age={secs}"))
                .expect("digits are a valid header value"),
            health_max_age,
        }
    }
}

/// What the HTTP side shares with the scheduler.
pub struct Shared {
    pub site: ArcSwap<Site>,
    pub live: ArcSwap<Live>,
    pub metrics: Metrics,
    pub subscriber: websub::Subscriber,
    /// Sources a valid WebSub push asked to refresh.
    pub pushes: mpsc::UnboundedSender<String>,
    started: Instant,
    last_good: Mutex<Option<Instant>>,
}

impl Shared {
    pub fn new(site: Site, live: Live, pushes: mpsc::UnboundedSender<String>) -> Shared {
        Shared {
            site: ArcSwap::from_pointee(site),
            live: ArcSwap::from_pointee(live),
            metrics: Metrics::default(),
            subscriber: websub::Subscriber::default(),
            pushes,
            started: Instant::now(),
            last_good: Mutex::new(None),
        }
    }

    /// Notes a good refresh (for `/healthz`).
    pub fn good_refresh(&self) {
        *self.last_good.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        self.metrics.good_refresh(unix);
    }

    /// Seconds since the last good refresh, or since start when there was none yet.
    fn refresh_age(&self) -> (Duration, bool) {
        let last = *self.last_good.lock().unwrap_or_else(|p| p.into_inner());
        match last {
            Some(t) => (t.elapsed(), true),
            None => (self.started.elapsed(), false),
        }
    }
}

/// The router: files, `/healthz`, `/metrics`, `/websub/callback/<source>`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/websub/callback/{source}",
            get(websub_verify).post(websub_push),
        )
        .fallback(file)
        .with_state(shared)
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    // Without TCP_NODELAY, Nagle + delayed ACK cost ~40 ms per keep-alive answer (gotcha 13).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Which encoding the client takes, best first: br, gzip, identity (RFC 9110 §12.5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Br,
    Gzip,
    Identity,
}

fn accepted(headers: &HeaderMap) -> (bool, bool) {
    let (mut br, mut gzip) = (false, false);
    for v in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let mut it = part.split(';');
            let name = it.next().unwrap_or("").trim();
            let q = it
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q <= 0.0 {
                continue;
            }
            if name.eq_ignore_ascii_case("br") {
                br = true;
            } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
                gzip = true;
            } else if name == "*" {
                br = true;
                gzip = true;
            }
        }
    }
    (br, gzip)
}

fn not_found(shared: &Shared) -> Response {
    shared.metrics.request(404);
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// A file of the output folder, from memory.
async fn file(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        shared.metrics.request(405);
        let mut r = (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n").into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path();
    let name = match path.strip_prefix('/') {
        Some("") => "index.html",
        Some(n) => n,
        None => return not_found(&shared),
    };
    // Names are looked up, never joined to a path: `..`, `/` or `%2e` cannot escape the folder.
    let site = shared.site.load();
    let Some(entry) = site.files.get(name) else {
        return not_found(&shared);
    };
    let headers = req.headers();
    let (br, gzip) = accepted(headers);
    let coding = match (&entry.br, &entry.gzip) {
        (Some(_), _) if br => Coding::Br,
        (_, Some(_)) if gzip => Coding::Gzip,
        _ => Coding::Identity,
    };
    let variant = match coding {
        Coding::Br => entry.br.as_ref(),
        Coding::Gzip => entry.gzip.as_ref(),
        Coding::Identity => None,
    }
    .unwrap_or(&entry.identity);
    let live = shared.live.load();

    // RFC 9110 §13.2.2: If-None-Match wins; If-Modified-Since only without it.
    let not_modified = if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        inm.to_str()
            .is_ok_and(|v| v.trim() == "*" || v.split(',').any(|t| entry.matches(t)))
    } else if let Some(ims) = headers.get(header::IF_MODIFIED_SINCE) {
        ims.to_str()
            .ok()
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since| entry.modified <= since)
    } else {
        false
    };

    let (status, body) = if not_modified {
        (StatusCode::NOT_MODIFIED, Body::empty())
    } else {
        (StatusCode::OK, Body::from(variant.body.clone()))
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::ETAG, variant.etag.clone());
    h.insert(header::LAST_MODIFIED, entry.last_modified.clone());
    h.insert(header::CACHE_CONTROL, live.cache_control.clone());
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if status == StatusCode::OK {
        h.insert(header::CONTENT_TYPE, entry.content_type.clone());
        match coding {
            Coding::Br => {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
            }
            Coding::Gzip => {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            Coding::Identity => {}
        }
    }
    shared.metrics.request(status.as_u16());
    res
}

/// 200 with the age of the last good refresh, 503 when it is older than `health_max_age`.
async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let (age, any) = shared.refresh_age();
    let max = shared.live.load().health_max_age;
    let what = if any {
        "last good refresh"
    } else {
        "no good refresh yet; started"
    };
    let (status, word) = if age > max {
        (StatusCode::SERVICE_UNAVAILABLE, "stale")
    } else {
        (StatusCode::OK, "ok")
    };
    shared.metrics.request(status.as_u16());
    let body = format!(
        "{word}: {what} {} s ago (limit {} s)\nlast_good_refresh_age_seconds {}\n",
        age.as_secs(),
        max.as_secs(),
        age.as_secs()
    );
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.metrics.request(200);
    shared
        .metrics
        .websub_subscriptions(shared.subscriber.counts());
    let mut r = shared.metrics.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

fn query_map(q: Option<String>) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// WebSub §5.3: the hub checks that we asked for this subscription; echo its challenge.
async fn websub_verify(
    State(shared): State<Arc<Shared>>,
    Path(source): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    match shared.subscriber.verify(&source, &query_map(q)) {
        Some(challenge) => {
            shared.metrics.request(200);
            let mut r = (StatusCode::OK, challenge).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
        None => not_found(&shared),
    }
}

/// WebSub §8: a push. Valid signature: the source is refreshed. A bad or missing one is
/// acknowledged (the Recommendation requires a 2xx) and ignored.
async fn websub_push(
    State(shared): State<Arc<Shared>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sig = headers.get("x-hub-signature").and_then(|v| v.to_str().ok());
    match shared.subscriber.push(&source, sig, &body) {
        websub::Push::Valid => {
            tracing::info!(source = %source, "websub: push received; refreshing the source");
            shared.metrics.websub_push("valid");
            let _ = shared.pushes.send(source);
            shared.metrics.request(202);
            StatusCode::ACCEPTED.into_response()
        }
        websub::Push::BadSignature => {
            tracing::warn!(source = %source, "websub: push with a missing or wrong signature ignored");
            shared.metrics.websub_push("bad_signature");
            shared.metrics.request(202);
            StatusCode::ACCEPTED.into_response()
        }
        websub::Push::Unknown => {
            shared.metrics.websub_push("unknown");
            not_found(&shared)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_with_q_values() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepted(&m)
        };
        assert_eq!(h("gzip, deflate, br"), (true, true));
        assert_eq!(h("gzip;q=1.0, br;q=0"), (false, true));
        assert_eq!(h("identity"), (false, false));
        assert_eq!(h("*"), (true, true));
        assert_eq!(accepted(&HeaderMap::new()), (false, false));
    }
}

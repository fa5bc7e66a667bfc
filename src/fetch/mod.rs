//! `(&Source, &Validators) → FetchOutcome`: bytes from a source, never parsed here.
//!
//! HTTP(S) goes through [`http`] (conditional GET, timeout, body cap, redirects followed by hand
//! with a cap, private-address guard); local paths and `file://` URLs through [`file`], which
//! derives validators from the file's size and mtime so an unchanged file is "not modified" too.
//!
//! Besides the body, an answer carries [`Hints`] for the caller's bookkeeping (where a permanent
//! redirect led, how long the server says the answer stays fresh); this module never decides
//! when a source is fetched again or where from.

pub mod file;
pub mod http;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Location, Settings};

/// What the source said last time, sent back for a conditional request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// What an HTTP answer said besides its body (all `None` for files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// Where the leading run of permanent redirects (301/308) from the requested URL led; `None`
    /// when there was no redirect or the first one was temporary (302/303/307).
    pub permanent_redirect: Option<String>,
    /// Seconds the answer stays fresh, from `Cache-Control: max-age` (minus `Age`), else
    /// `Expires` minus `Date` (RFC 9111 §4.2.1); `None` with `no-cache`/`no-store` or neither.
    pub fresh_for: Option<u64>,
}

/// A body that came back.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: Bytes,
    /// The `Content-Type` header (HTTP only).
    pub content_type: Option<String>,
    /// Where the body came from after redirects (a URL or a path).
    pub final_location: String,
    pub validators: Validators,
    /// HTTP status (200 for files).
    pub status: u16,
    pub hints: Hints,
}

#[derive(Debug)]
pub enum FetchOutcome {
    Modified(Fetched),
    NotModified {
        validators: Validators,
        hints: Hints,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: HTTP status {code}")]
    Status {
        url: String,
        code: u16,
        /// Seconds from a `Retry-After` header, when one came.
        retry_after: Option<u64>,
    },
    #[error("{url}: body exceeds {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: no answer within {seconds} s")]
    Timeout { url: String, seconds: u64 },
    #[error("{url}: refused: {reason}")]
    Refused { url: String, reason: String },
    #[error("{url}: {source}")]
    Network {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Fetches sources over HTTP(S) and from files. Cheap to clone (shares one connection pool and
/// one set of per-host slots).
#[derive(Clone)]
pub struct Fetcher {
    http: http::HttpFetcher,
    max_body_bytes: u64,
    per_host: usize,
    hosts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl Fetcher {
    pub fn new(settings: &Settings) -> Result<Fetcher, FetchError> {
        Ok(Fetcher {
            http: http::HttpFetcher::new(settings)?,
            max_body_bytes: settings.max_body_bytes,
            per_host: settings.per_host_concurrency.max(1),
            hosts: Arc::default(),
        })
    }

    /// Waits for one of the `per_host_concurrency` slots of `location`'s host; the caller holds
    /// it while fetching from there. `None` for files, which have no host to spare. (Not taken
    /// by [`Fetcher::fetch`] itself, so a caller can take it before other limits.)
    pub async fn host_slot(&self, location: &Location) -> Option<OwnedSemaphorePermit> {
        let Location::Http(url) = location else {
            return None;
        };
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let sem = {
            // Poisoned only by a panic while inserting, which leaves the map usable.
            let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
            hosts
                .entry(host)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
                .clone()
        };
        // The semaphore is never closed, so acquiring cannot fail.
        sem.acquire_owned().await.ok()
    }

    /// Fetches one location, conditionally when `validators` has something.
    pub async fn fetch(
        &self,
        location: &Location,
        validators: &Validators,
    ) -> Result<FetchOutcome, FetchError> {
        match location {
            Location::Http(url) => self.http.fetch(url, validators).await,
            Location::File(path) => {
                let path = path.clone();
                let validators = validators.clone();
                let limit = self.max_body_bytes;
                tokio::task::spawn_blocking(move || file::fetch(&path, &validators, limit))
                    .await
                    .unwrap_or_else(|e| {
                        Err(FetchError::Io {
                            path: PathBuf::new(),
                            source: std::io::Error::other(e),
                        })
                    })
            }
        }
    }
}

//! Local files (`feeds/x.xml`, `file:///srv/mirror/x.xml`): read with the same size cap as HTTP.
//! The validators are the file's length and mtime, so a file that did not change is reported
//! as not modified and nothing downstream runs for it.

use std::io::Read;
use std::path::Path;
use std::time::UNIX_EPOCH;

use bytes::Bytes;

use super::{FetchError, FetchOutcome, Fetched, Hints, Validators};

pub fn fetch(path: &Path, old: &Validators, limit: u64) -> Result<FetchOutcome, FetchError> {
    let io = |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::other("not a regular file")));
    }
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let validators = Validators {
        etag: Some(format!("\"{:x}-{:x}\"", meta.len(), mtime)),
        last_modified: None,
    };
    if old.etag.is_some() && *old == validators {
        return Ok(FetchOutcome::NotModified {
            validators,
            hints: Hints::default(),
        });
    }
    if meta.len() > limit {
        return Err(FetchError::TooLarge {
            url: path.display().to_string(),
            limit,
        });
    }
    let mut body = Vec::with_capacity(meta.len() as usize);
    // `take` guards against a file that grows while it is read.
    file.take(limit + 1).read_to_end(&mut body).map_err(io)?;
    if body.len() as u64 > limit {
        return Err(FetchError::TooLarge {
            url: path.display().to_string(),
            limit,
        });
    }
    Ok(FetchOutcome::Modified(Fetched {
        body: Bytes::from(body),
        content_type: None,
        final_location: path.display().to_string(),
        validators,
        status: 200,
        hints: Hints::default(),
    }))
}

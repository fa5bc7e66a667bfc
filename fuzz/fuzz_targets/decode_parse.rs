//! Any bytes, any Content-Type: decoding and parsing must return, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (ct, body) = match data.split_first() {
        Some((b, rest)) if b % 4 == 0 => (Some("text/xml; charset=windows-1251"), rest),
        Some((b, rest)) if b % 4 == 1 => (Some("application/rss+xml; charset=koi8-r"), rest),
        Some((_, rest)) => (None, rest),
        None => (None, data),
    };
    let decoded = feedloom::decode::decode(body, ct);
    let _ = feedloom::parse::parse(&decoded.text);
});

//! Any text as an item's title, summary and body (HTML or plain): normalising must not panic,
//! must be idempotent, and must never emit script, event handlers or dangerous URLs.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::normalize_item(data));

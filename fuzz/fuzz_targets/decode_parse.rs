//! Any bytes, any Content-Type: decoding and parsing must return, never panic or hang.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::decode_parse(data));

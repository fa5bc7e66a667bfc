//! feedloom: pulls feeds, normalises every item, republishes merged feeds.
//!
//! ```text
//!  config ─┐
//!          ▼
//!  fetch ─▶ decode ─▶ parse ─▶ normalize ─▶ store ─▶ select ─▶ publish ─▶ public/*.{rss,atom,json}
//!  (bytes)  (UTF-8)   (RawFeed) (Item)      (SQLite)  (per [[feed]])
//! ```
//!
//! `fulltext = true` sources take a detour between normalize and store: the item's page is
//! fetched, [`fulltext`] extracts the story, and normalize runs on it (`pipeline::pages`).
//!
//! Each stage is a module with plain functions; only [`pipeline`] composes them, and the CLI
//! ([`cli`]) drives the pipeline. A stage never imports another stage. `feedloom serve` adds
//! [`schedule`] (the daemon loop over the same pipeline functions) and [`serve`] (HTTP from
//! memory, `/healthz`, `/metrics`, WebSub).

pub mod cli;
pub mod cluster;
pub mod config;
pub mod decode;
pub mod fetch;
pub mod fulltext;
pub mod model;
pub mod normalize;
pub mod parse;
pub mod pipeline;
pub mod publish;
pub mod schedule;
pub mod select;
pub mod serve;
pub mod sources;
pub mod store;

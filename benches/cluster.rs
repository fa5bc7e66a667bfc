//! Clustering 100,000 items within the window: `cargo bench --bench cluster`.
//!
//! Items like the benchmark generator's (/work/shared/bench/gen_sources.py): 90 % unrelated
//! stories drawn from one Zipf vocabulary (so unrelated items share common phrases), 10 % wire
//! stories, each republished by several outlets with a prefixed or suffixed title and one extra
//! sentence. Signatures are computed first (the store keeps them; not timed); then
//! `cluster::assign` runs over all 100,000 members, seven times, and the median is printed, with
//! how many wire copies joined their story's cluster and how many unrelated items were merged.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use feedloom::cluster::{self, Member};
use feedloom::model::Item;

const N: usize = 100_000;
const VOCAB: usize = 20_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// A word index, Zipf-like: small indices far more often.
    fn word(&mut self) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((VOCAB as f64).powf(u) as usize).saturating_sub(1)
    }
}

fn word(i: usize) -> String {
    const SYL: [&str; 16] = [
        "ka", "ro", "mi", "ten", "sa", "lo", "vur", "de", "an", "pel", "zo", "ri", "ust", "ne",
        "bo", "har",
    ];
    let mut w = String::new();
    let mut i = i + 1;
    while i > 0 {
        w.push_str(SYL[i % 16]);
        i /= 16;
    }
    w
}

fn sentence(rng: &mut Rng, words: usize) -> String {
    let mut s: Vec<String> = (0..words).map(|_| word(rng.word())).collect();
    s[0] = {
        let mut c = s[0].chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect())
            .unwrap_or_default()
    };
    format!("{}.", s.join(" "))
}

fn body(rng: &mut Rng, sentences: usize) -> String {
    (0..sentences)
        .map(|_| {
            let n = 8 + rng.below(14);
            format!("<p>{}</p>", sentence(rng, n))
        })
        .collect()
}

fn item(id: usize, title: String, content: String) -> Item {
    Item {
        id: id.to_string(),
        title,
        link: Some(format!("https://outlet{}.example/news/{id}", id % 1000)),
        published: None,
        updated: None,
        authors: vec![],
        summary: None,
        content_html: Some(content),
        categories: vec![],
        language: Some("en".into()),
        enclosures: vec![],
        image: None,
    }
}

/// Time this thread has run on a CPU (Linux: /proc/thread-self/schedstat), so a machine shared
/// with other builds can still be measured.
fn thread_cpu() -> Option<std::time::Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(std::time::Duration::from_nanos(ns))
}

fn main() {
    let mut rng = Rng(20261128);
    let base: DateTime<Utc> = "2026-03-01T12:00:00Z".parse().unwrap();
    let window = Duration::hours(72);
    // Wire stories: (title, body, date).
    let stories: Vec<(String, String, DateTime<Utc>)> = (0..2_000)
        .map(|_| {
            let t = sentence(&mut rng, 8);
            let n = 6 + rng.below(8);
            let b = body(&mut rng, n);
            let at = base - Duration::minutes(rng.below(72 * 60) as i64);
            (t, b, at)
        })
        .collect();
    let started = Instant::now();
    let mut items = Vec::with_capacity(N);
    let mut dates = Vec::with_capacity(N);
    // The wire story each item carries, if any.
    let mut truth: Vec<Option<usize>> = Vec::with_capacity(N);
    for id in 0..N {
        if rng.below(10) == 0 {
            let k = rng.below(stories.len());
            let (t, b, at) = &stories[k];
            let title = match rng.below(3) {
                0 => t.clone(),
                1 => format!("{t} | Outlet {}", id % 1000),
                _ => format!("UPDATE: {t}"),
            };
            let n = 4 + rng.below(5);
            let extra = sentence(&mut rng, n);
            items.push(item(id, title, format!("{b}\n<p>{extra}</p>")));
            dates.push(*at + Duration::minutes(rng.below(90) as i64));
            truth.push(Some(k));
        } else {
            let n = 5 + rng.below(8);
            let t = sentence(&mut rng, n);
            let n = 4 + rng.below(10);
            let b = body(&mut rng, n);
            items.push(item(id, t, b));
            dates.push(base - Duration::minutes(rng.below(72 * 60) as i64));
            truth.push(None);
        }
    }
    let generated = started.elapsed();
    let started = Instant::now();
    let sigs: Vec<Option<cluster::Signature>> = cluster::sign_all(&items);
    let signing = started.elapsed();
    // 1,000 outlets; item i comes from outlet i % 1000.
    let keys: Vec<String> = (0..N)
        .map(|i| format!("urn:feedloom:outlet{}:{i}", i % 1000))
        .collect();
    let members: Vec<Member<'_>> = (0..N)
        .map(|i| Member {
            source: (i % 1000) as u32,
            date: dates[i],
            arrival: dates[i],
            signature: sigs[i].as_ref(),
            exact: cluster::exact_keys(&items[i]),
            keyed: false,
        })
        .collect();
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let mut assigned = Vec::new();
    for _ in 0..7 {
        let (started, cpu_started) = (Instant::now(), thread_cpu());
        assigned = cluster::assign(&members, cluster::DEFAULT_THRESHOLD, window, |a, b| {
            keys[a].cmp(&keys[b])
        })
        .into_iter()
        .map(|r| keys[r as usize].as_str())
        .collect();
        times.push(started.elapsed());
        cpu.push(thread_cpu().zip(cpu_started).map(|(b, a)| b - a));
    }
    times.sort();
    cpu.sort();
    // Quality: each wire story's copies should share one cluster; unrelated items none.
    let mut story_keys: std::collections::HashMap<usize, std::collections::HashMap<&str, usize>> =
        Default::default();
    let mut merged_unrelated = 0;
    let mut sizes: std::collections::HashMap<&str, usize> = Default::default();
    for (i, k) in assigned.iter().enumerate() {
        *sizes.entry(k).or_default() += 1;
        if let Some(s) = truth[i] {
            *story_keys.entry(s).or_default().entry(k).or_default() += 1;
        }
    }
    for (i, k) in assigned.iter().enumerate() {
        if truth[i].is_none() && sizes[k] > 1 {
            merged_unrelated += 1;
        }
    }
    let copies: usize = truth.iter().flatten().count();
    let in_main: usize = story_keys
        .values()
        .map(|m| m.values().copied().max().unwrap_or(0))
        .sum();
    println!(
        "cluster: {N} items ({copies} wire copies of {} stories); generated in {:.2?}, signed in {:.2?}",
        story_keys.len(),
        generated,
        signing
    );
    println!(
        "cluster: assign over {N} items: median {:.1?} wall (min {:.1?}, max {:.1?}, 7 runs); median {} on the CPU",
        times[3],
        times[0],
        times[6],
        cpu[3].map_or("unknown time".to_string(), |d| format!("{d:.1?}"))
    );
    println!(
        "cluster: wire copies in their story's main cluster: {in_main}/{copies} ({:.2} %); unrelated items merged: {merged_unrelated}; clusters: {}",
        100.0 * in_main as f64 / copies as f64,
        sizes.len()
    );
}

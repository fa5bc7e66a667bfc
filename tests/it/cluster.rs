//! Near-duplicate clustering: the labelled pairs judged by the real similarity function.

use feedloom::cluster;
use feedloom::model::Item;
use serde::Deserialize;

use crate::support::repo;

#[derive(Deserialize)]
struct Pair {
    id: String,
    same_story: bool,
    lang: String,
    a: Side,
    b: Side,
    note: String,
}

#[derive(Deserialize)]
struct Side {
    title: String,
    body: String,
}

fn item(side: &Side, lang: &str) -> Item {
    let paragraphs: String = side
        .body
        .split("\n\n")
        .map(|p| format!("<p>{}</p>", html_escape::encode_text(p)))
        .collect();
    Item {
        id: "x".into(),
        title: side.title.clone(),
        link: None,
        published: None,
        updated: None,
        authors: vec![],
        summary: None,
        content_html: Some(paragraphs),
        categories: vec![],
        language: Some(lang.into()),
        enclosures: vec![],
        image: None,
    }
}

/// Every labelled pair judged at the default threshold, pair by pair; precision and recall
/// printed (`cargo test --test it cluster -- --nocapture`).
#[test]
fn labelled_pairs_precision_and_recall() {
    let pairs: Vec<Pair> = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/dedupe/pairs.json")).unwrap(),
    )
    .unwrap();
    let threshold = cluster::DEFAULT_THRESHOLD;
    let (mut tp, mut fp, mut fneg, mut tn) = (0, 0, 0, 0);
    let mut wrong = Vec::new();
    for p in &pairs {
        let (a, b) = (item(&p.a, &p.lang), item(&p.b, &p.lang));
        let (sa, sb) = (
            cluster::signature(&a).unwrap(),
            cluster::signature(&b).unwrap(),
        );
        let (sim, head) = (sa.similarity(&sb), sa.head_similarity(&sb));
        let said = cluster::same_story(&a, &b, threshold);
        println!(
            "{} {} {:<5} sim={sim:.3} head={head:.3} {}",
            p.id,
            p.lang,
            p.same_story,
            if said == p.same_story { "ok" } else { "WRONG" }
        );
        match (p.same_story, said) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fneg += 1,
            (false, false) => tn += 1,
        }
        if said != p.same_story {
            wrong.push(format!("{} ({}): {}", p.id, p.lang, p.note));
        }
    }
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fneg).max(1) as f64;
    println!(
        "{} pairs at threshold {threshold}: tp={tp} fp={fp} fn={fneg} tn={tn} precision={precision:.3} recall={recall:.3}",
        pairs.len()
    );
    assert!(
        precision >= 0.98 && recall >= 0.90,
        "precision {precision:.3}, recall {recall:.3}; wrong: {wrong:#?}"
    );
}

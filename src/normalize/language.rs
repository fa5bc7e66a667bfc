//! Language detection restricted to a configured set of candidates (lingua; whatlang labelled
//! short Russian as Bulgarian and Kazakh as Belarusian in our tests, lingua restricted to a few
//! languages did not). Used only when an item does not say its language.

use lingua::{IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder};

/// Below this confidence the feed's own language is trusted instead.
const MIN_CONFIDENCE: f64 = 0.6;

pub struct Detector {
    inner: Option<LanguageDetector>,
    /// The languages told apart, sorted (empty when detection is off).
    languages: Vec<String>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Detector")
    }
}

impl Detector {
    /// A detector choosing among `codes` (ISO 639-1); codes lingua does not know are skipped.
    pub fn new(codes: &[String]) -> Detector {
        let langs: Vec<Language> = codes
            .iter()
            .filter_map(|c| c.parse::<IsoCode639_1>().ok())
            .map(|c| Language::from_iso_code_639_1(&c))
            .collect();
        let mut distinct = langs.clone();
        distinct.sort();
        distinct.dedup();
        // With fewer than two candidates there is nothing to tell apart: the feed's language
        // (or none) stands.
        let inner = (distinct.len() >= 2)
            .then(|| LanguageDetectorBuilder::from_languages(&distinct).build());
        let mut languages: Vec<String> = if inner.is_some() {
            distinct
                .iter()
                .map(|l| l.iso_code_639_1().to_string())
                .collect()
        } else {
            Vec::new()
        };
        languages.sort();
        Detector { inner, languages }
    }

    /// The languages it chooses among (ISO 639-1, sorted; empty when it detects nothing):
    /// what its answers depend on.
    pub fn languages(&self) -> &[String] {
        &self.languages
    }

    /// The language of `text` when the detector is confident, as an ISO 639-1 code.
    pub fn detect(&self, text: &str) -> Option<String> {
        let inner = self.inner.as_ref()?;
        let sample: String = text.chars().take(1000).collect();
        let values = inner.compute_language_confidence_values(&sample);
        let (lang, confidence) = values.first()?;
        (*confidence >= MIN_CONFIDENCE).then(|| lang.iso_code_639_1().to_string())
    }
}

/// The codes lingua can tell apart (for validating `settings.languages`).
pub fn known(code: &str) -> bool {
    code.parse::<IsoCode639_1>()
        .is_ok_and(|c| Language::all().iter().any(|l| l.iso_code_639_1() == c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricted_detection() {
        let d = Detector::new(&["ru", "uk", "kk", "be", "en", "de", "fr", "es"].map(String::from));
        assert_eq!(
            d.detect(
                "Визит лидера Туркменистана в Астану: эксперты обсуждают перспективы сотрудничества"
            )
            .as_deref(),
            Some("ru")
        );
        assert_eq!(
            d.detect("Президент Қасым-Жомарт Тоқаев Астанада шетелдік инвесторлармен кездесті")
                .as_deref(),
            Some("kk")
        );
        assert_eq!(
            d.detect("Метро відкриє нову станцію у грудні").as_deref(),
            Some("uk")
        );
        assert_eq!(
            d.detect("Lawmakers approve revised budget after all-night session")
                .as_deref(),
            Some("en")
        );
        assert_eq!(d.detect("").as_deref(), None);
    }
}

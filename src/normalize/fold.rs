//! Case folding and word characters for comparing texts: excerpt tests, repeated titles,
//! category de-duplication and the words clustering signs.
//!
//! Each character folds on its own. For comparisons ([`push_folded`], [`fold`]) ς folds to σ as
//! well, so a text folds as `str::to_lowercase` folds it (which writes ς at the end of a word)
//! with every sigma made σ: what used to compare equal still does, and a text folds the same
//! whole or cut short. ASCII and the Cyrillic block, most of what feeds carry, take a
//! table-free path here; every other character goes to the standard library. Unit and
//! property tests compare both paths.

/// Appends `c` folded for comparisons: [`push_lowered`], and ς as σ.
#[inline]
pub fn push_folded(out: &mut String, c: char) {
    if c == 'ς' {
        out.push('σ');
    } else {
        push_lowered(out, c);
    }
}

/// Appends `c` lowercased (`char::to_lowercase`), with ё as е: how clustering folds the words
/// it signs (stored signatures depend on it).
#[inline]
pub fn push_lowered(out: &mut String, c: char) {
    match lowered(c) {
        Folded::One(Some(l)) => out.push(l),
        many => out.extend(many),
    }
}

/// `c` lowercased as [`push_lowered`] appends it.
#[inline]
fn lowered(c: char) -> Folded {
    Folded::One(Some(match c {
        'A'..='Z' => c.to_ascii_lowercase(),
        '\0'..='\x7f' => c,
        'Ё' | 'ё' => 'е',
        // А..Я → а..я, and Ѐ..Џ → ѐ..џ (but Ё, above).
        'А'..='Я' => shifted(c, 0x20),
        '\u{400}'..='\u{40f}' => shifted(c, 0x50),
        'а'..='я' | '\u{450}'..='\u{45f}' => c,
        _ => return Folded::Many(c.to_lowercase()),
    }))
}

fn shifted(c: char, by: u32) -> char {
    char::from_u32(c as u32 + by).unwrap_or(c)
}

/// `s` folded for comparisons, character by character (see [`push_folded`]).
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_folded(&mut out, c);
    }
    out
}

/// The characters a character folds or lowers to ([`folded`], [`push_lowered`]), as an
/// iterator (no buffer).
pub enum Folded {
    One(Option<char>),
    Many(std::char::ToLowercase),
}

impl Iterator for Folded {
    type Item = char;

    #[inline]
    fn next(&mut self) -> Option<char> {
        match self {
            Folded::One(c) => c.take(),
            Folded::Many(it) => it.next().map(|l| if l == 'ё' { 'е' } else { l }),
        }
    }
}

/// `c` folded for comparisons (what [`push_folded`] appends).
#[inline]
pub fn folded(c: char) -> Folded {
    if c == 'ς' {
        Folded::One(Some('σ'))
    } else {
        lowered(c)
    }
}

/// The word characters ([`is_word_char`]) of `fold(s)`, in order, made as they are read.
pub fn folded_words(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().flat_map(folded).filter(|c| is_word_char(*c))
}

/// Gives the characters of `fold(s)` to `f`, in order, while it returns true (without building
/// the folded text); false when `f` stopped it.
pub fn each_folded(s: &str, f: impl FnMut(char) -> bool) -> bool {
    s.chars().flat_map(folded).all(f)
}

/// Whether `c` is alphanumeric (`char::is_alphanumeric`), with ASCII and Cyrillic letters
/// answered without a table search.
#[inline]
pub fn is_word_char(c: char) -> bool {
    match c {
        'a'..='z' | 'A'..='Z' | '0'..='9' => true,
        '\0'..='\x7f' => false,
        '\u{400}'..='\u{481}' | '\u{48a}'..='\u{52f}' => true,
        _ => c.is_alphanumeric(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The standard library's answer for one character.
    fn folded_by_std(c: char) -> String {
        c.to_lowercase()
            .map(|l| if l == 'ё' { 'е' } else { l })
            .collect()
    }

    #[test]
    fn fast_paths_agree_with_the_standard_library() {
        for c in ('\0'..='\u{7ff}').chain(['\u{1e9e}', 'İ', 'Σ', 'ς', '\u{10400}']) {
            let mut ours = String::new();
            push_lowered(&mut ours, c);
            assert_eq!(ours, folded_by_std(c), "lowered U+{:04X}", c as u32);
            assert_eq!(
                is_word_char(c),
                c.is_alphanumeric(),
                "is_word_char(U+{:04X})",
                c as u32
            );
        }
    }

    /// Every code point, against the standard library: lowered with ё as е, and folded with
    /// ς as σ too.
    #[test]
    fn every_character_lowers_and_folds_as_the_standard_library() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let yo = |l: char| if l == 'ё' { 'е' } else { l };
            let lowered: String = c.to_lowercase().map(yo).collect();
            let mut pushed = String::new();
            push_lowered(&mut pushed, c);
            assert_eq!(pushed, lowered, "lowered U+{:04X}", c as u32);
            let by_std: String = c
                .to_lowercase()
                .map(|l| if l == 'ς' { 'σ' } else { yo(l) })
                .collect();
            assert_eq!(
                folded(c).collect::<String>(),
                by_std,
                "folded U+{:04X}",
                c as u32
            );
            pushed.clear();
            push_folded(&mut pushed, c);
            assert_eq!(pushed, by_std, "push_folded U+{:04X}", c as u32);
        }
    }

    #[test]
    fn folds_case_yo_and_sigma() {
        assert_eq!(fold("Ёлка ЁЖ Straße ΟΔΟΣ"), "елка еж straße οδοσ");
        assert_eq!(fold("ЇЖАК Ґанок"), "їжак ґанок");
        assert_eq!(fold("ΚΟΣΜΟΣ"), fold("Κοσμος"));
    }

    proptest::proptest! {
        /// What `str::to_lowercase` (with ё → е) folded alike still folds alike: the fold is
        /// its output with every ς made σ.
        #[test]
        fn fold_is_std_lowercase_with_one_sigma(s in "[\\PC ΣσςΟΔ]{0,16}") {
            let by_std = s.to_lowercase().replace('ё', "е").replace('ς', "σ");
            proptest::prop_assert_eq!(fold(&s), by_std);
        }
    }
}

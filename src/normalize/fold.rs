//! Case folding and word characters for comparing texts: excerpt tests, repeated titles,
//! category de-duplication and the words clustering signs.
//!
//! Each character folds on its own (lowercase, then ё → е): unlike `str::to_lowercase`, a
//! final Σ becomes σ as anywhere else, so a text folds the same whole or cut short. ASCII and
//! the Cyrillic block, most of what feeds carry, take a table-free path here; every other
//! character goes to the standard library. Unit tests compare both paths over every
//! character they cover.

/// Appends `c` folded: its lowercase, with ё as е.
#[inline]
pub fn push_folded(out: &mut String, c: char) {
    match c {
        'A'..='Z' => out.push(c.to_ascii_lowercase()),
        '\0'..='\x7f' => out.push(c),
        'Ё' | 'ё' => out.push('е'),
        // А..Я → а..я, and Ѐ..Џ → ѐ..џ (but Ё, above).
        'А'..='Я' => out.push(shifted(c, 0x20)),
        '\u{400}'..='\u{40f}' => out.push(shifted(c, 0x50)),
        'а'..='я' | '\u{450}'..='\u{45f}' => out.push(c),
        _ => {
            for l in c.to_lowercase() {
                out.push(if l == 'ё' { 'е' } else { l });
            }
        }
    }
}

fn shifted(c: char, by: u32) -> char {
    char::from_u32(c as u32 + by).unwrap_or(c)
}

/// `s` folded, character by character (see [`push_folded`]).
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_folded(&mut out, c);
    }
    out
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
            push_folded(&mut ours, c);
            assert_eq!(ours, folded_by_std(c), "fold of U+{:04X}", c as u32);
            assert_eq!(
                is_word_char(c),
                c.is_alphanumeric(),
                "is_word_char(U+{:04X})",
                c as u32
            );
        }
    }

    #[test]
    fn folds_case_and_yo() {
        assert_eq!(fold("Ёлка ЁЖ Straße ΟΔΟΣ"), "елка еж straße οδοσ");
        assert_eq!(fold("ЇЖАК Ґанок"), "їжак ґанок");
    }
}

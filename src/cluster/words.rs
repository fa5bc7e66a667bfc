//! The words of a text as `unicode_segmentation`'s `unicode_words` gives them (Unicode word
//! boundaries, UAX #29), split by a short scan when the text is written only in characters
//! whose word-break class is known here: Latin and Cyrillic letters, ASCII digits, white space
//! and common punctuation. That is nearly every news text, and the full rules cost a quarter of
//! signing. Any other character sends the whole text to `unicode_words`. A property test
//! compares the two on texts mixing every character of the quick set with others.

use unicode_segmentation::UnicodeSegmentation;

/// A character's part in word boundaries, for the characters the quick split knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// ALetter.
    Letter,
    /// Numeric.
    Digit,
    /// MidLetter: joins two letters (`a:b`).
    MidLetter,
    /// MidNum: joins two digits (`3,5`).
    MidNum,
    /// MidNumLet and Single_Quote: joins two letters or two digits (`e.g`, `3.5`, `don't`).
    MidBoth,
    /// Breaks on both sides and is never part of a word (space, most punctuation).
    Other,
}

/// The class of `c`, `None` when the quick split does not know it. ASCII and the Cyrillic
/// letters а-я, most of every text, are answered first: a table and one range.
#[inline]
fn class(c: char) -> Option<Class> {
    let u = c as u32;
    if u < 0x80 {
        return ASCII_CLASS[u as usize];
    }
    if (0x430..=0x44f).contains(&u) {
        return Some(Class::Letter);
    }
    class_of(c)
}

/// [`class_of`] of each ASCII character.
static ASCII_CLASS: [Option<Class>; 128] = {
    let mut t = [None; 128];
    let mut b = 0;
    while b < 128 {
        t[b] = class_of(b as u8 as char);
        b += 1;
    }
    t
};

/// The class of `c` by its ranges (what [`class`] answers).
const fn class_of(c: char) -> Option<Class> {
    use Class::*;
    Some(match c {
        'a'..='z' | 'A'..='Z' => Letter,
        '0'..='9' => Digit,
        ':' | '·' => MidLetter,
        ',' | ';' => MidNum,
        '.' | '\'' | '‘' | '’' => MidBoth,
        '_' => return None,
        '\0'..='\x7f' => Other,
        'ª' | 'º' | 'À'..='Ö' | 'Ø'..='ö' | 'ø'..='ɏ' => Letter,
        '\u{400}'..='\u{481}' | '\u{48a}'..='\u{52f}' => Letter,
        '\u{a0}'..='\u{a9}' | '«' | '¬' | '®'..='±' | '´' | '¶' | '»' | '¿' | '×' | '÷' => {
            Other
        }
        '–' | '—' | '‚' | '“' | '”' | '„' | '•' | '…' | '№' | '€' | '\u{2009}' => {
            Other
        }
        _ => return None,
    })
}

/// Whether `mid`, after a word whose last character is of class `last`, joins it to a next
/// character of class `next`.
fn joins(mid: Class, last: Class, next: Option<Class>) -> bool {
    match (mid, next) {
        (Class::MidLetter, Some(Class::Letter)) => last == Class::Letter,
        (Class::MidNum, Some(Class::Digit)) => last == Class::Digit,
        (Class::MidBoth, Some(n @ (Class::Letter | Class::Digit))) => last == n,
        _ => false,
    }
}

/// The words of `text`, as `text.unicode_words()` gives them.
pub fn words(text: &str) -> Words<'_> {
    if text.chars().all(|c| class(c).is_some()) {
        Words::Quick { s: text, at: 0 }
    } else {
        Words::Full(text.unicode_words())
    }
}

pub enum Words<'a> {
    Quick { s: &'a str, at: usize },
    Full(unicode_segmentation::UnicodeWords<'a>),
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let (s, at) = match self {
            Words::Full(w) => return w.next(),
            Words::Quick { s, at } => (*s, at),
        };
        let mut chars = s[*at..]
            .char_indices()
            .map(|(i, c)| (*at + i, c))
            .peekable();
        let mut start = None;
        let mut last = Class::Other;
        while let Some((i, c)) = chars.next() {
            let class = class(c).unwrap_or(Class::Other);
            let ends = match class {
                Class::Letter | Class::Digit => {
                    start.get_or_insert(i);
                    last = class;
                    false
                }
                Class::Other => true,
                mid => !joins(mid, last, chars.peek().and_then(|(_, n)| self::class(*n))),
            };
            if ends && let Some(start) = start {
                *at = i + c.len_utf8();
                return Some(&s[start..i]);
            }
        }
        *at = s.len();
        start.map(|start| &s[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every character the quick split knows.
    fn known_chars() -> Vec<char> {
        ('\0'..='\u{52f}')
            .chain([
                '–', '—', '‚', '“', '”', '„', '•', '…', '№', '€', '\u{2009}', '‘', '’',
            ])
            .filter(|c| class(*c).is_some())
            .collect()
    }

    /// Every character the quick split knows, and some it does not.
    fn any_char() -> impl Strategy<Value = char> {
        prop_oneof![
            6 => proptest::sample::select(vec!['a', 'Я', 'é', '1', '7', ' ', '\n']),
            4 => proptest::sample::select(vec![':', '·', ',', ';', '.', '\'', '‘', '’']),
            6 => proptest::sample::select(known_chars()),
            1 => any::<char>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn quick_split_gives_unicode_words(chars in proptest::collection::vec(any_char(), 0..24)) {
            let text: String = chars.into_iter().collect();
            let ours: Vec<&str> = words(&text).collect();
            let full: Vec<&str> = text.unicode_words().collect();
            prop_assert_eq!(ours, full, "{:?}", text);
        }
    }

    /// Every known character, between and beside letters, digits and itself.
    #[test]
    fn every_known_char_in_every_context() {
        for c in known_chars() {
            for text in [
                format!("a{c}b"),
                format!("1{c}2"),
                format!("a{c}1"),
                format!("1{c}a"),
                format!("{c}a"),
                format!("a{c}"),
                format!("{c}{c}"),
                format!("a{c}{c}b"),
                format!("{c}"),
            ] {
                let ours: Vec<&str> = words(&text).collect();
                let full: Vec<&str> = text.unicode_words().collect();
                assert_eq!(ours, full, "{text:?}");
            }
        }
    }

    #[test]
    fn splits_news_text() {
        let text = "Визит «лидера» в Астану: 3,5 млрд, e.g. don't — итоги 2026.";
        assert!(matches!(words(text), Words::Quick { .. }));
        assert_eq!(
            words(text).collect::<Vec<_>>(),
            [
                "Визит",
                "лидера",
                "в",
                "Астану",
                "3,5",
                "млрд",
                "e.g",
                "don't",
                "итоги",
                "2026"
            ]
        );
    }
}

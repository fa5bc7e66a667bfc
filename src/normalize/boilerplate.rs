//! Built-in rules for text that is not the story: share widgets, calls to action, "read also"
//! links, ad labels, feed footers, and photo credits (kept, but as captions).
//!
//! A rule only ever judges a whole block (a paragraph or a line that stands apart): it matches
//! when the block *starts* with one of its phrases and what follows is nothing, punctuation,
//! link text or the names of social networks. A phrase inside a sentence ("Read more about the
//! budget in our explainer.") is never touched. Phrases come in Russian, Ukrainian, Kazakh,
//! Belarusian, English, German, French and Spanish; all are applied to every item, because
//! sites mix them ("Share" under a Russian story).

use std::sync::LazyLock;

use regex::Regex;

struct Rule {
    name: &'static str,
    /// Anchored at the start of the block, case-insensitive.
    start: Regex,
    /// What may follow the phrase.
    tail: Tail,
}

#[derive(Clone, Copy)]
enum Tail {
    /// Nothing but punctuation, links or network names.
    LinksOnly,
    /// As `LinksOnly`, or after a colon/dash a short headline (a cross-link written as text).
    Headline,
    /// Anything, as long as the whole block is short (a call to action is one sentence).
    ShortSentence,
    /// Nothing at all.
    Nothing,
}

/// Each rule's name, phrases (a regex alternation) and what may follow them.
const PHRASES: [(&str, &str, Tail); 4] = [
    (
        "share",
        "поделиться|поделитесь|поделись|поділитися|поділіться|бөлісу|бөлісіңіз|падзяліцца|\
             share(?: this(?: article| story| post| page)?| on)?|teilen|diesen artikel teilen|\
             partager|partagez|compartir|comparte|compártelo",
        Tail::LinksOnly,
    ),
    (
        "read-also",
        "читайте также|читайте еще|читайте ещё|смотрите также|читать далее|читать полностью|\
             подробнее|читайте також|дивіться також|читати далі|детальніше|сондай-ақ оқыңыз|\
             толығырақ|чытайце таксама|read more|read also|see also|related(?: articles| stories)?|\
             continue reading|lesen sie auch|mehr zum thema|weiterlesen|lire aussi|à lire aussi|\
             lire la suite|lee también|leer más|te puede interesar|más información",
        Tail::Headline,
    ),
    (
        "subscribe",
        "подписывайтесь|подпишитесь|подписаться на|присоединяйтесь к нам|читайте нас в|\
             следите за нами|підписуйтесь|підписуйтеся|приєднуйтесь|жазылыңыз|падпісвайцеся|\
             subscribe to|follow us|sign up for our|join us on|abonnieren sie|folgen sie uns|\
             abonnez-vous|suivez-nous|suscríbete|síguenos",
        Tail::ShortSentence,
    ),
    (
        "ad-label",
        "реклама|на правах рекламы|реклама\\.|advertisement|sponsored|anzeige|publicité|publicidad",
        Tail::Nothing,
    ),
];

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    PHRASES
        .iter()
        .map(|(name, phrases, tail)| Rule {
            name,
            start: Regex::new(&format!(r"(?i)^(?:{phrases})(?:$|[\s:.!…,\-–—|/(])"))
                .expect("built-in boilerplate rules are valid regexes"),
            tail: *tail,
        })
        .collect()
});

/// Matches where any rule's phrase or the feed footer could start a block: one look at a
/// block that starts otherwise (almost every one) instead of one a rule.
static ANY_START: LazyLock<Regex> = LazyLock::new(|| {
    let phrases: Vec<&str> = PHRASES.iter().map(|(_, p, _)| *p).collect();
    Regex::new(&format!(r"(?i)^(?:the post |{})", phrases.join("|")))
        .expect("built-in boilerplate rules are valid regexes")
});

static FEED_FOOTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^the post .{1,300} appeared first on .{1,200}$")
        .expect("built-in footer regex is valid")
});

/// Names that make up a share widget's links.
const NETWORKS: &[&str] = &[
    "vk",
    "вконтакте",
    "вк",
    "telegram",
    "телеграм",
    "телеграмм",
    "facebook",
    "fb",
    "twitter",
    "x",
    "whatsapp",
    "viber",
    "одноклассники",
    "ok",
    "ok.ru",
    "linkedin",
    "email",
    "e-mail",
    "почта",
    "pinterest",
    "reddit",
    "threads",
    "mastodon",
    "bluesky",
    "мой мир",
    "livejournal",
    "tumblr",
    "copy link",
    "скопировать ссылку",
    "print",
    "печать",
];

fn only_networks(tail: &str) -> bool {
    let t = tail.to_lowercase();
    let words: Vec<&str> = t
        .split(|c: char| c.is_whitespace() || ",|/·•".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    !words.is_empty() && words.iter().all(|w| NETWORKS.contains(w))
}

/// Splits a block after its matched phrase: the phrase with the punctuation after it, and the
/// rest without the punctuation around it.
fn split_tail<'a>(text: &'a str, start: &Regex) -> (&'a str, &'a str) {
    let end = start.find(text).map_or(0, |m| m.end());
    let rest = &text[end..];
    let punct = |c: char| c.is_whitespace() || ":.!…,-–—|/()".contains(c);
    let tail = rest.trim_start_matches(punct);
    let head = &text[..text.len() - tail.len()];
    (head, tail.trim_end_matches(punct))
}

/// The name of the rule a block of text (with `links`, the text of its links) falls under.
pub fn matches(text: &str, links: impl FnOnce() -> String) -> Option<&'static str> {
    let text = text.trim();
    if text.is_empty() || !ANY_START.is_match(text) {
        return None;
    }
    // The links' text is read only for a block that starts with a phrase.
    let links = std::cell::LazyCell::new(links);
    if FEED_FOOTER.is_match(text) {
        return Some("feed-footer");
    }
    for r in RULES.iter() {
        if !r.start.is_match(text) {
            continue;
        }
        let (head, tail) = split_tail(text, &r.start);
        let links_only = tail.is_empty()
            || only_networks(tail)
            || (!links.is_empty() && links.chars().count() + 3 >= tail.chars().count());
        let ok = match r.tail {
            Tail::Nothing => tail.is_empty(),
            Tail::LinksOnly => links_only,
            Tail::Headline => {
                let after_colon = head.trim_end().ends_with([':', '—', '–']);
                links_only
                    || (after_colon
                        && tail.split_whitespace().count() <= 15
                        && !tail.ends_with('.'))
            }
            Tail::ShortSentence => text.chars().count() <= 200,
        };
        if ok {
            return Some(r.name);
        }
    }
    None
}

static CREDIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:фото|фотография|фото и видео|фотограф|світлина|фото з|сурет|фота|photo|photos|photograph|photo credit|image|image credit|credit|credits|picture|foto|bild|crédit photo|crédits photo|fotografía|imagen)(?:\s*(?::|—|–|-|/|©)|\s+(?:by|de|von|пресс-службы|пресс-служб|из|с сайта|из открытых|из архива|автора|предоставлено|предоставлены|прес-служби|з відкритих|архив|архів|(?-i:\p{Lu})))",
    )
    .expect("built-in credit regex is valid")
});

/// Whether a block is a photo credit ("Фото: ТАСС", "Фото пресс-службы ...", "Photo: AP",
/// "Credit: Reuters"): short, no sentence of its own.
pub fn is_credit(text: &str) -> bool {
    let t = text.trim();
    // Asked of every block: a paragraph over 200 characters (800 bytes at most) is not read.
    if t.len() > 4 * 200 {
        return false;
    }
    let words = t.split_whitespace().take(17).count();
    (1..=16).contains(&words)
        && t.chars().count() <= 200
        && !t.ends_with(['!', '?'])
        && (CREDIT.is_match(t) || t.starts_with('©'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`super::matches`] with the links' text at hand.
    fn matches(text: &str, links: &str) -> Option<&'static str> {
        super::matches(text, || links.to_string())
    }

    #[test]
    fn share_widgets_and_ctas() {
        assert_eq!(matches("Поделиться:", ""), Some("share"));
        assert_eq!(
            matches("Поделиться: VK Telegram", "VK Telegram"),
            Some("share")
        );
        assert_eq!(matches("Share this article", ""), Some("share"));
        assert_eq!(matches("Share: Facebook, X, Email", ""), Some("share"));
        assert_eq!(matches("Поділитися", ""), Some("share"));
        assert_eq!(matches("Teilen", ""), Some("share"));
        assert_eq!(
            matches(
                "Читайте также: Казахстан и Узбекистан подписали соглашение",
                ""
            ),
            Some("read-also")
        );
        assert_eq!(
            matches("Read more: Budget explained", "Budget explained"),
            Some("read-also")
        );
        assert_eq!(
            matches("Подписывайтесь на наш Telegram-канал!", ""),
            Some("subscribe")
        );
        assert_eq!(
            matches("Follow us on Twitter and Facebook.", ""),
            Some("subscribe")
        );
        assert_eq!(matches("Реклама", ""), Some("ad-label"));
        assert_eq!(
            matches(
                "The post Budget passes appeared first on Global Dispatch.",
                ""
            ),
            Some("feed-footer")
        );
    }

    #[test]
    fn sentences_are_not_boilerplate() {
        assert_eq!(
            matches("Read more about the budget in our explainer.", "explainer"),
            None
        );
        assert_eq!(
            matches("Поделиться опытом приехали эксперты из пяти стран.", ""),
            None
        );
        assert_eq!(matches("Shares of the company rose 5%.", ""), None);
        assert_eq!(
            matches(
                "Подробнее о визите рассказал министр иностранных дел страны.",
                ""
            ),
            None
        );
        assert_eq!(
            matches("Реклама на улицах города будет запрещена.", ""),
            None
        );
        assert_eq!(
            matches("Subscribers will get the update next week.", ""),
            None
        );
    }

    #[test]
    fn credits() {
        assert!(is_credit("Фото пресс-службы правительства Казахстана"));
        assert!(is_credit("Фото: ТАСС"));
        assert!(is_credit("Photo: AP / Jane Doe"));
        assert!(is_credit("Credit: Reuters"));
        assert!(is_credit("Photo by Jane Doe"));
        assert!(is_credit("© Reuters"));
        assert!(!is_credit(
            "Фотографии с места событий публикуют очевидцы, и их становится всё больше."
        ));
        assert!(!is_credit("Photographers gathered outside the palace."));
        assert!(!is_credit("Photo shows the damage in the city center"));
    }
}

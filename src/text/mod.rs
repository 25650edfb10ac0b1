//! Text for search, pure (no database, no HTTP): the visible text of HTML pages, the folding
//! that lets `ders` find `dərs`, the words of a query, and highlighted snippets.
//!
//! Folding maps each character to exactly one character, so a position in folded text is the
//! same position in the original: the index holds folded text, snippets show the original.

mod html;
mod snippet;

pub use html::visible_text;
pub use snippet::{Part, snippet};

/// Longest query, in characters, that search looks at; the rest is cut off.
pub const MAX_QUERY_CHARS: usize = 200;
/// Most words of one query that search looks at.
pub const MAX_QUERY_WORDS: usize = 8;

/// Folds one character for search: lower case; the Azerbaijani letters ə ı İ ş ç ğ ö ü (and
/// other accented Latin letters) to their plain Latin base; Russian ё to е. Always one
/// character in, one out.
pub fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    match c {
        'Ə' | 'ə' => 'e',
        'İ' | 'ı' => 'i',
        'Ё' | 'ё' => 'е',
        _ => {
            let mut lower = c.to_lowercase();
            match (lower.next(), lower.next()) {
                (Some(l), None) => latin_base(l),
                _ => c,
            }
        }
    }
}

/// The base letter of an accented lower-case Latin letter (Latin-1 and Latin Extended-A).
fn latin_base(c: char) -> char {
    match c {
        'à'..='å' | 'ā' | 'ă' | 'ą' => 'a',
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => 'c',
        'ď' | 'đ' => 'd',
        'è'..='ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => 'e',
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => 'g',
        'ĥ' | 'ħ' => 'h',
        'ì'..='ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' => 'i',
        'ĵ' => 'j',
        'ķ' => 'k',
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => 'l',
        'ñ' | 'ń' | 'ņ' | 'ň' => 'n',
        'ò'..='ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => 'o',
        'ŕ' | 'ŗ' | 'ř' => 'r',
        'ś' | 'ŝ' | 'ş' | 'š' => 's',
        'ţ' | 'ť' | 'ŧ' => 't',
        'ù'..='ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => 'u',
        'ŵ' => 'w',
        'ý' | 'ÿ' | 'ŷ' => 'y',
        'ź' | 'ż' | 'ž' => 'z',
        other => other,
    }
}

/// `text` folded character by character (see [`fold_char`]).
pub fn fold(text: &str) -> String {
    text.chars().map(fold_char).collect()
}

/// Whether `c` belongs to a word (the same rule for the index, queries and snippets).
pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// The folded words of what a user typed, in order, without repeats: at most
/// [`MAX_QUERY_WORDS`] words from the first [`MAX_QUERY_CHARS`] characters. Everything that is
/// not a letter or digit (quotes, `*`, `-`, brackets) separates words, so no input is syntax.
pub fn query_words(text: &str) -> Vec<String> {
    let folded: String = text.chars().take(MAX_QUERY_CHARS).map(fold_char).collect();
    let mut words: Vec<String> = Vec::new();
    for word in folded.split(|c: char| !is_word_char(c)).filter(|w| !w.is_empty()) {
        if !words.iter().any(|w| w == word) {
            words.push(word.to_owned());
        }
        if words.len() == MAX_QUERY_WORDS {
            break;
        }
    }
    words
}

/// Whether a folded word of the text matches a folded query word: a prefix match (Azerbaijani
/// adds suffixes: `sagird` finds `şagirdlər`), except that a one-letter query word must match
/// the whole word.
pub fn word_matches(text_word: &str, query_word: &str) -> bool {
    if query_word.chars().nth(1).is_none() {
        text_word == query_word
    } else {
        text_word.starts_with(query_word)
    }
}

/// How the words of a query combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Every word must occur.
    All,
    /// Any word may occur.
    Any,
}

/// An FTS5 query for folded `words`: each word quoted (so `AND`, `NEAR` and the like are only
/// words) and, from two letters on, a prefix match. Empty when there are no words.
pub fn fts_query(words: &[String], combine: Combine) -> String {
    let joiner = match combine {
        Combine::All => " ",
        Combine::Any => " OR ",
    };
    words
        .iter()
        .map(|w| {
            // Words hold only letters and digits, but quote-doubling keeps this safe whatever
            // they hold.
            let quoted = format!("\"{}\"", w.replace('"', "\"\""));
            if w.chars().nth(1).is_some() {
                quoted + "*"
            } else {
                quoted
            }
        })
        .collect::<Vec<_>>()
        .join(joiner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azerbaijani_letters_fold_to_plain_latin() {
        assert_eq!(
            fold("Dərs ŞAGİRD çiçək Ağac öyrənmək üzüm qızıl IŞIQ"),
            "ders sagird cicek agac oyrenmek uzum qizil isiq"
        );
        assert_eq!(fold("Ə İ I ı"), "e i i i");
    }

    #[test]
    fn russian_folds_case_and_yo() {
        assert_eq!(fold("ШКОЛА Школа ЁЖ ёлка"), "школа школа еж елка");
    }

    #[test]
    fn folding_keeps_one_char_per_char() {
        for text in ["Ахəнг İİİ ẞ ǅ ﬁ Σίσυφος", "İstanbul şəhəri", "ǰ"] {
            assert_eq!(text.chars().count(), fold(text).chars().count(), "{text}");
        }
    }

    #[test]
    fn query_words_ignore_syntax() {
        assert_eq!(
            query_words("\"dərs* AND -şagird\" NEAR("),
            ["ders", "and", "sagird", "near"]
        );
        assert!(query_words("\" * - ( ) :").is_empty());
        assert_eq!(query_words("su su SU").len(), 1);
        let long = "söz ".repeat(500);
        assert_eq!(query_words(&long).len(), 1);
        let many: String = (0..30).map(|i| format!("w{i} ")).collect();
        assert_eq!(query_words(&many).len(), MAX_QUERY_WORDS);
    }

    #[test]
    fn fts_query_quotes_every_word() {
        let words = query_words("sagird and a");
        assert_eq!(fts_query(&words, Combine::All), "\"sagird\"* \"and\"* \"a\"");
        assert_eq!(fts_query(&words, Combine::Any), "\"sagird\"* OR \"and\"* OR \"a\"");
    }

    #[test]
    fn prefix_matching_except_single_letters() {
        assert!(word_matches("sagirdler", "sagird"));
        assert!(!word_matches("sagird", "sagirdler"));
        assert!(word_matches("a", "a"));
        assert!(!word_matches("ab", "a"));
    }
}

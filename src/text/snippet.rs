//! Highlighted snippets: a short window of the original text around the words a query
//! matched. Matching runs on folded text; since folding is one character for one, the window
//! and the marked words are cut from the original, so a child sees `şagirdlər`, never
//! `sagirdler`.

use super::{fold_char, is_word_char, word_matches};

/// A piece of a snippet; `hit` marks a word the query matched.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Part {
    pub text: String,
    pub hit: bool,
}

/// A word of the text: its byte range in the original, and which query words it matches
/// (a bit per query word).
struct Word {
    start: usize,
    end: usize,
    hits: u32,
}

fn words_of(text: &str, query: &[String]) -> Vec<Word> {
    let mut words = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let finish = |start: usize, end: usize, folded: &str, words: &mut Vec<Word>| {
        let hits = query
            .iter()
            .take(32)
            .enumerate()
            .filter(|(_, q)| word_matches(folded, q))
            .fold(0u32, |bits, (i, _)| bits | (1 << i));
        words.push(Word { start, end, hits });
    };
    for (at, c) in text.char_indices() {
        let folded = fold_char(c);
        if is_word_char(folded) {
            match &mut current {
                Some((_, word)) => word.push(folded),
                None => current = Some((at, folded.to_string())),
            }
        } else if let Some((start, word)) = current.take() {
            finish(start, at, &word, &mut words);
        }
    }
    if let Some((start, word)) = current.take() {
        finish(start, text.len(), &word, &mut words);
    }
    words
}

/// A window of at most `max_words` words of `text`, placed where the most different query
/// words match, with the matching words marked. Returns the parts and the number of
/// different query words the window holds (0: no match, and the window is the text's start).
pub fn snippet(text: &str, query: &[String], max_words: usize) -> (Vec<Part>, u32) {
    let words = words_of(text, query);
    if words.is_empty() || max_words == 0 {
        return (Vec::new(), 0);
    }
    let hit_at: Vec<usize> = (0..words.len()).filter(|&i| words[i].hits != 0).collect();
    // The window starting at each hit: most different query words first, then most hits.
    let mut best: Option<((u32, usize), usize, usize)> = None;
    for (k, &first) in hit_at.iter().enumerate() {
        let mut bits = 0u32;
        let mut count = 0usize;
        let mut last = first;
        for &i in hit_at[k..].iter().take_while(|&&i| i < first + max_words) {
            bits |= words[i].hits;
            count += 1;
            last = i;
        }
        let key = (bits.count_ones(), count);
        if best.is_none_or(|(b, _, _)| key > b) {
            best = Some((key, first, last));
        }
    }
    let (distinct, first, last) = best.map_or((0, 0, 0), |((b, _), first, last)| (b, first, last));
    // A little context before the first hit, as long as the last hit stays in, and the
    // window kept full near the end.
    let start = first
        .saturating_sub(max_words / 4)
        .max((last + 1).saturating_sub(max_words))
        .min(words.len().saturating_sub(max_words));
    let end = (start + max_words).min(words.len());
    (parts(text, &words[start..end], start > 0, end < words.len()), distinct)
}

fn parts(text: &str, window: &[Word], cut_before: bool, cut_after: bool) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::new();
    let mut push = |piece: &str, hit: bool| {
        if piece.is_empty() {
            return;
        }
        match out.last_mut() {
            Some(last) if last.hit == hit => last.text.push_str(piece),
            _ => out.push(Part {
                text: piece.to_owned(),
                hit,
            }),
        }
    };
    if cut_before {
        push("… ", false);
    }
    let mut at = window.first().map_or(0, |w| w.start);
    for word in window {
        push(&text[at..word.start], false);
        push(&text[word.start..word.end], word.hits != 0);
        at = word.end;
    }
    if cut_after {
        // Keep punctuation that closes the last word (a full stop, a closing bracket).
        let tail: String = text[at..].chars().take_while(|c| !c.is_whitespace()).collect();
        push(&tail, false);
        push(" …", false);
    } else {
        push(&text[at..], false);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::query_words;

    fn render(parts: &[Part]) -> String {
        parts
            .iter()
            .map(|p| if p.hit { format!("[{}]", p.text) } else { p.text.clone() })
            .collect()
    }

    #[test]
    fn hits_show_the_original_letters() {
        let (parts, n) = snippet(
            "Sinifdə 25 şagird var. Şagirdlər dərsə gəlir.",
            &query_words("sagird ders"),
            20,
        );
        assert_eq!(render(&parts), "Sinifdə 25 [şagird] var. [Şagirdlər] [dərsə] gəlir.");
        assert_eq!(n, 2);
    }

    #[test]
    fn the_window_goes_where_most_query_words_are() {
        let text = "su ".repeat(50) + "bitki kök yarpaq " + &"torpaq ".repeat(50);
        let (parts, n) = snippet(&text, &query_words("bitki yarpaq su"), 10);
        assert_eq!(n, 3);
        let shown = render(&parts);
        assert!(shown.starts_with("… "), "{shown}");
        assert!(shown.contains("[bitki] kök [yarpaq]"), "{shown}");
        assert!(shown.ends_with(" …"), "{shown}");
    }

    #[test]
    fn no_match_gives_the_start() {
        let (parts, n) = snippet("один два три четыре", &query_words("пять"), 2);
        assert_eq!(n, 0);
        assert_eq!(render(&parts), "один два …");
    }

    #[test]
    fn russian_matches_in_any_case() {
        let (parts, _) = snippet("Наша ШКОЛА и ёлка.", &query_words("школа елка"), 10);
        assert_eq!(render(&parts), "Наша [ШКОЛА] и [ёлка].");
    }
}

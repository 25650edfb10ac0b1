//! Search over the lessons' titles, summaries and page text: words typed without
//! Azerbaijani letters still match (`ders` finds `dərs`), Russian in any case; results ranked
//! with the title counting most, each with a snippet of the original text, matches marked.

use serde::Serialize;

use super::{Library, ServiceError};
use crate::store::{self, LessonRow};
use crate::text::{self, Combine};

/// Most results one search returns.
pub const MAX_RESULTS: usize = 50;
/// Words in a snippet.
const SNIPPET_WORDS: usize = 24;

/// What to look for. `text` is what the user typed: any characters at all (quotes, `*`,
/// `AND` are words, never syntax); only its first [`text::MAX_QUERY_CHARS`] characters count.
#[derive(Debug, Clone, Serialize)]
pub struct SearchQuery {
    pub text: String,
    /// Only lessons in this language (`az`, `ru`, `en`, ...); `None` or empty for all.
    pub language: Option<String>,
    /// Most results wanted; at most [`MAX_RESULTS`] are returned.
    pub limit: usize,
}

/// A piece of a snippet, as written in the lesson; `hit` marks a matched word.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnippetPart {
    pub text: String,
    pub hit: bool,
}

/// One lesson found.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    pub lesson: LessonRow,
    pub snippet: Vec<SnippetPart>,
    /// Relevance, higher is better (bm25); comparable only within one search.
    pub score: f64,
}

impl Library {
    /// The lessons matching `query`, best first. An empty query (or one of punctuation only)
    /// finds nothing. Every word must match; when no lesson has them all, lessons with any
    /// of them are returned instead.
    pub fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>, ServiceError> {
        let words = text::query_words(&query.text);
        let limit = query.limit.min(MAX_RESULTS);
        if words.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let language = query.language.as_deref().map(str::trim).filter(|l| !l.is_empty());
        let found = self.pool.with(|conn| {
            // One read transaction: the ranking and the rows come from the same snapshot.
            let tx = conn.transaction()?;
            let mut found = store::search_index(&tx, &text::fts_query(&words, Combine::All), language, limit)?;
            if found.is_empty() && words.len() > 1 {
                found = store::search_index(&tx, &text::fts_query(&words, Combine::Any), language, limit)?;
            }
            Ok(found)
        })?;
        Ok(found
            .into_iter()
            .map(|f| {
                let snippet = best_snippet(&f.lesson.meta.summary, &f.body, &words);
                SearchHit {
                    lesson: f.lesson,
                    snippet,
                    score: f.score,
                }
            })
            .collect())
    }
}

/// The page text's window with the most query words, or the summary's when it holds more;
/// the start of the page text (or summary) when only the title matched.
fn best_snippet(summary: &str, body: &str, words: &[String]) -> Vec<SnippetPart> {
    let (body_parts, in_body) = text::snippet(body, words, SNIPPET_WORDS);
    let (summary_parts, in_summary) = text::snippet(summary, words, SNIPPET_WORDS);
    let parts = if in_summary > in_body || body_parts.is_empty() {
        summary_parts
    } else {
        body_parts
    };
    parts
        .into_iter()
        .map(|p| SnippetPart {
            text: p.text,
            hit: p.hit,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(parts: &[SnippetPart]) -> String {
        parts
            .iter()
            .map(|p| if p.hit { format!("[{}]", p.text) } else { p.text.clone() })
            .collect()
    }

    #[test]
    fn the_snippet_comes_from_where_the_words_are() {
        let words = text::query_words("bitki su");
        assert_eq!(
            render(&best_snippet("Bitki nədir?", "Bitki su içir.", &words)),
            "[Bitki] [su] içir."
        );
        assert_eq!(
            render(&best_snippet("Bitki və su", "Bitki böyüyür.", &words)),
            "[Bitki] və [su]"
        );
        assert_eq!(render(&best_snippet("Xülasə", "", &words)), "Xülasə");
        assert_eq!(render(&best_snippet("", "Mətn", &words)), "Mətn");
    }
}

//! The search index: each visible lesson's folded title, summary and page text in an FTS5
//! table, written in the transaction that makes the lesson visible (`replace_lesson`) and
//! dropped with it (a trigger on `lessons`), plus the original text that snippets are cut from.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::Result;
use super::blobs::{blob_info, read_raw};
use super::catalogue::{FileEntry, LESSON_COLUMNS, LessonRow, NOT_HIDDEN, lesson_row};
use crate::text::{fold, visible_text};

/// Text kept per lesson, in characters: enough for any real lesson, bounded for a huge one.
const MAX_TEXT_CHARS: usize = 100_000;
/// HTML files bigger than this are not read for the index (a book, not a lesson page).
const MAX_HTML_BYTES: u64 = 4 * 1024 * 1024;
/// Bump when the text extraction or folding changes: stores indexed by an older rule are
/// indexed again on open.
const INDEX_VERSION: &str = "2";
const INDEX_VERSION_KEY: &str = "search_index_version";

/// bm25 weights of the title, summary and text columns: a word in the title counts most.
const RANK: &str = "bm25(lesson_fts, 10.0, 4.0, 1.0)";

/// Indexes the lesson at `rowid`. Call in the transaction that inserted it; its blobs must be
/// stored. A page that cannot be read is left out of the index (and logged), never fatal.
pub(super) fn index_lesson(
    conn: &Connection,
    rowid: i64,
    title: &str,
    summary: &str,
    entry: &str,
    files: &[FileEntry],
    text: Option<IndexText>,
) -> Result<()> {
    let text = text.unwrap_or_else(|| IndexText::of(&lesson_text(conn, entry, files)));
    conn.prepare_cached("INSERT OR REPLACE INTO lesson_text (lesson, body) VALUES (?1, ?2)")?
        .execute(params![rowid, text.packed])?;
    conn.prepare_cached("INSERT OR REPLACE INTO lesson_fts (rowid, title, summary, body) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![rowid, fold(title), fold(summary), text.folded])?;
    Ok(())
}

/// A lesson's page text (`lesson_text`) made ready for `index_lesson`: packed, as snippets
/// are cut from it, and folded, as the index matches it. A big import makes these on other
/// threads: on the writer's, packing and folding were a third of the time it spent indexing.
#[derive(Debug)]
pub struct IndexText {
    packed: Vec<u8>,
    folded: String,
}

impl IndexText {
    pub fn of(body: &str) -> Self {
        IndexText {
            packed: pack_text(body),
            folded: fold(body),
        }
    }
}

/// A lesson's text is kept as zstd (a quarter of its size): an update of a lesson then
/// writes, and frees, a quarter of the pages. Stores indexed before keep it as TEXT.
fn pack_text(body: &str) -> Vec<u8> {
    zstd::bulk::compress(body.as_bytes(), 3).unwrap_or_default()
}

fn unpack_text(value: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Text(text) => String::from_utf8_lossy(text).into_owned(),
        ValueRef::Blob(packed) => zstd::stream::decode_all(packed)
            .map(|raw| String::from_utf8_lossy(&raw).into_owned())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// The visible text of a lesson's HTML pages, the entry page first, as its search index holds it.
pub fn lesson_text(conn: &Connection, entry: &str, files: &[FileEntry]) -> String {
    let mut pages: Vec<&FileEntry> = files
        .iter()
        .filter(|f| f.media_type.starts_with("text/html") || f.media_type.starts_with("application/xhtml"))
        .collect();
    pages.sort_by_key(|f| (f.path != entry, f.path.clone()));
    let mut text = String::new();
    for page in pages {
        let left = MAX_TEXT_CHARS.saturating_sub(text.chars().count());
        if left < 2 {
            break;
        }
        if page.size > MAX_HTML_BYTES {
            continue;
        }
        let raw = blob_info(conn, page.hash).and_then(|info| read_raw(conn, &info));
        match raw {
            Ok(raw) => {
                let page_text = visible_text(&raw, left - 1);
                if !page_text.text.is_empty() {
                    if !text.is_empty() {
                        text.push(' ');
                    }
                    text.push_str(&page_text.text);
                }
                // Full: the pages after this one are not read at all (before, each of them was
                // read and decompressed whole for a word that might fit in the last few
                // characters: half of a big import's HTML, for nothing a search would miss).
                if page_text.cut {
                    break;
                }
            }
            Err(e) => tracing::warn!("{} is left out of the search index: {e}", page.path),
        }
    }
    text
}

/// Indexes every lesson the index does not hold yet (a store made before search existed),
/// or all of them when the index was made by an older rule. Returns how many were indexed.
pub fn index_missing(conn: &mut Connection) -> Result<usize> {
    // A store indexed by this rule stays complete: every lesson is indexed in the transaction
    // that makes it visible. Only a store made before search existed (no version), or
    // indexed by an older rule, needs work; checking row by row would read every lesson's
    // text on every open.
    let stale = |conn: &Connection| -> Result<bool> {
        let version: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [INDEX_VERSION_KEY], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(version.as_deref() != Some(INDEX_VERSION))
    };
    // Most opens find nothing to do: check without taking the write lock.
    if !stale(conn)? {
        return Ok(0);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: Option<String> = tx
        .query_row("SELECT value FROM meta WHERE key = ?1", [INDEX_VERSION_KEY], |r| {
            r.get(0)
        })
        .optional()?;
    if version.as_deref() != Some(INDEX_VERSION) {
        tx.execute("INSERT INTO lesson_fts (lesson_fts) VALUES ('delete-all')", [])?;
        tx.execute("DELETE FROM lesson_text", [])?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [INDEX_VERSION_KEY, INDEX_VERSION],
        )?;
    }
    let missing: Vec<(i64, String, String, String)> = {
        let mut stmt = tx.prepare(
            "SELECT l.rowid, l.title, l.summary, l.entry FROM lessons l
             WHERE NOT EXISTS (SELECT 1 FROM lesson_text t WHERE t.lesson = l.rowid) ORDER BY l.rowid",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (rowid, title, summary, entry) in &missing {
        let files = files_of_rowid(&tx, *rowid)?;
        index_lesson(&tx, *rowid, title, summary, entry, &files, None)?;
    }
    settle_index(&tx, missing.len())?;
    tx.commit()?;
    Ok(missing.len())
}

/// After a transaction that indexed `indexed` lessons: when they are at least half of all
/// lessons (a first import, a rebuilt index), merges the index into one segment. The index
/// merges only when 16 segments pile up on a level (migration 11), and a big import leaves
/// many: without this, one of the next small updates would rewrite them all. A small import
/// leaves its one segment for that merge, which then only meets other small ones.
pub fn settle_index(conn: &Connection, indexed: usize) -> Result<()> {
    let lessons = super::catalogue::count_lessons(conn)?;
    if indexed >= MIN_SETTLE && u64::try_from(indexed).unwrap_or(u64::MAX).saturating_mul(2) >= lessons {
        conn.execute("INSERT INTO lesson_fts (lesson_fts) VALUES ('optimize')", [])?;
    }
    Ok(())
}

/// Fewer lessons than this leave a segment too small to matter.
const MIN_SETTLE: usize = 16;

fn files_of_rowid(conn: &Connection, rowid: i64) -> Result<Vec<FileEntry>> {
    let mut stmt = conn.prepare_cached("SELECT path, hash, size, media_type FROM files WHERE lesson = ?1")?;
    let rows = stmt.query_map([rowid], |row| {
        let hash: Vec<u8> = row.get(1)?;
        Ok(FileEntry {
            path: row.get(0)?,
            hash: super::Hash(hash.try_into().unwrap_or([0; 32])),
            size: row.get(2)?,
            media_type: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A lesson the index found, with its bm25 score (higher is better) and its page text.
#[derive(Debug, Clone)]
pub struct Found {
    pub lesson: LessonRow,
    pub score: f64,
    pub body: String,
}

/// The best `limit` visible lessons (hidden ones are left out) matching the FTS5 query `fts`
/// (in `language`, when given), best first. `fts` must be well-formed: build it with `text::fts_query`.
pub fn search_index(conn: &Connection, fts: &str, language: Option<&str>, limit: usize) -> Result<Vec<Found>> {
    let ranked: Vec<(i64, f64)> = {
        let sql = format!(
            "SELECT lesson_fts.rowid, {RANK} AS score FROM lesson_fts JOIN lessons l ON l.rowid = lesson_fts.rowid
             WHERE lesson_fts MATCH ?1 AND (?2 IS NULL OR l.language = ?2) AND {NOT_HIDDEN}
             ORDER BY score, l.id LIMIT ?3"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![fts, language, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let sql = format!(
        "SELECT {LESSON_COLUMNS}, t.body FROM lessons l JOIN lesson_text t ON t.lesson = l.rowid WHERE l.rowid = ?1"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut found = Vec::with_capacity(ranked.len());
    for (rowid, score) in ranked {
        let hit = stmt
            .query_row([rowid], |row| Ok((lesson_row(row)?, unpack_text(row.get_ref(13)?))))
            .optional()?;
        // Run both reads in one transaction to see one snapshot; outside one, a lesson
        // removed in between is simply left out.
        if let Some((lesson, body)) = hit {
            found.push(Found {
                lesson,
                score: -score,
                body,
            });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::lesson::LessonMeta;
    use crate::store::{Hash, NewLesson, Origin, migrate, prepare_blob, remove_lesson, replace_lesson, write_blob};
    use crate::text::{Combine, fts_query, query_words};

    fn store() -> Connection {
        let mut conn = Connection::open_in_memory().expect("memory db");
        migrate(&mut conn, Path::new(":memory:")).expect("migrate");
        conn
    }

    fn put(conn: &Connection, id: &str, title: &str, language: &str, html: &str) {
        let blob = prepare_blob(html.as_bytes().to_vec(), true, 3).expect("blob");
        write_blob(conn, &blob).expect("write");
        let lesson = NewLesson {
            meta: LessonMeta {
                id: id.to_owned(),
                title: title.to_owned(),
                language: language.to_owned(),
                grade: 5,
                subject: "Test".to_owned(),
                summary: String::new(),
                entry: "index.html".to_owned(),
                order: 0,
            },
            origin: Origin::Local,
            seq: 0,
            part: None,
            files: vec![FileEntry {
                path: "index.html".to_owned(),
                hash: blob.hash,
                size: html.len() as u64,
                media_type: "text/html; charset=utf-8".to_owned(),
            }],
        };
        replace_lesson(conn, &lesson).expect("replace");
    }

    fn ids(conn: &Connection, query: &str, language: Option<&str>) -> Vec<String> {
        let fts = fts_query(&query_words(query), Combine::All);
        search_index(conn, &fts, language, 10)
            .expect("search")
            .into_iter()
            .map(|f| f.lesson.meta.id)
            .collect()
    }

    #[test]
    fn texts_are_kept_as_zstd_and_older_plain_texts_still_read() {
        let conn = store();
        put(&conn, "a", "Dərs bir", "az", "<p>Sinifdə şagirdlər çiçək əkir.</p>");
        let kind: String = conn
            .query_row("SELECT typeof(body) FROM lesson_text", [], |r| r.get(0))
            .expect("kind");
        assert_eq!(kind, "blob");
        let fts = fts_query(&query_words("cicek"), Combine::All);
        assert_eq!(
            search_index(&conn, &fts, None, 10).expect("search")[0].body,
            "Sinifdə şagirdlər çiçək əkir."
        );
        // A store indexed before texts were compressed keeps TEXT rows until they are redone.
        conn.execute("UPDATE lesson_text SET body = 'Sinifdə şagirdlər çiçək əkir.'", [])
            .expect("as before");
        assert_eq!(
            search_index(&conn, &fts, None, 10).expect("search")[0].body,
            "Sinifdə şagirdlər çiçək əkir."
        );
    }

    #[test]
    fn folded_prefix_queries_find_the_lesson() {
        let conn = store();
        put(
            &conn,
            "a",
            "Dərs bir",
            "az",
            "<p>Sinifdə şagirdlər <b>çiçək</b> əkir.</p>",
        );
        put(&conn, "r", "Урок", "ru", "<p>Наша Школа и ёлка</p>");
        assert_eq!(ids(&conn, "ders", None), ["a"]);
        assert_eq!(ids(&conn, "sagird cicek", None), ["a"]);
        assert_eq!(ids(&conn, "ШКОЛА", None), ["r"]);
        assert_eq!(ids(&conn, "елка", Some("ru")), ["r"]);
        assert!(ids(&conn, "елка", Some("az")).is_empty());
        let found = search_index(&conn, &fts_query(&query_words("sagird"), Combine::All), None, 10).expect("search");
        assert_eq!(found[0].body, "Sinifdə şagirdlər çiçək əkir.");
        assert!(found[0].score > 0.0);
    }

    #[test]
    fn replaced_and_removed_lessons_leave_the_index() {
        let conn = store();
        put(&conn, "a", "Bir", "az", "<p>köhnə mətn</p>");
        put(&conn, "b", "İki", "az", "<p>başqa</p>");
        put(&conn, "a", "Bir", "az", "<p>yeni mətn</p>");
        assert!(ids(&conn, "kohne", None).is_empty());
        assert_eq!(ids(&conn, "yeni", None), ["a"]);
        assert!(remove_lesson(&conn, "a").expect("remove"));
        assert!(ids(&conn, "yeni", None).is_empty());
        assert!(ids(&conn, "metn", None).is_empty());
        // The freed rowid is reused by the next lesson; the index must not mix them up.
        put(&conn, "c", "Üç", "az", "<p>təzə</p>");
        assert_eq!(ids(&conn, "teze", None), ["c"]);
        assert!(ids(&conn, "yeni", None).is_empty());
        // A lesson hidden from phones is not found either, until shown again.
        crate::store::set_hidden(&conn, "c", true).expect("hide");
        assert!(ids(&conn, "teze", None).is_empty());
        crate::store::set_hidden(&conn, "c", false).expect("show");
        assert_eq!(ids(&conn, "teze", None), ["c"]);
    }

    #[test]
    fn titles_rank_above_text() {
        let conn = store();
        put(
            &conn,
            "body",
            "Başqa",
            "az",
            "<p>Vulkan haqqında bir az. Vulkan püskürür.</p>",
        );
        put(&conn, "title", "Vulkan", "az", "<p>Dağlar və onların quruluşu.</p>");
        assert_eq!(ids(&conn, "vulkan", None), ["title", "body"]);
    }

    #[test]
    fn an_unindexed_store_is_indexed_once() {
        let mut conn = store();
        put(&conn, "a", "Bir", "az", "<p>şagird</p>");
        put(&conn, "b", "İki", "az", "<p>müəllim</p>");
        // As a store made before search: no index rows at all, no version.
        conn.execute_batch("INSERT INTO lesson_fts (lesson_fts) VALUES ('delete-all'); DELETE FROM lesson_text;")
            .expect("clear");
        assert!(ids(&conn, "sagird", None).is_empty());
        assert_eq!(index_missing(&mut conn).expect("index"), 2);
        assert_eq!(ids(&conn, "sagird", None), ["a"]);
        assert_eq!(index_missing(&mut conn).expect("again"), 0);
        // An index made by an older rule is made again.
        conn.execute("UPDATE meta SET value = '0' WHERE key = ?1", [INDEX_VERSION_KEY])
            .expect("age");
        assert_eq!(index_missing(&mut conn).expect("rebuild"), 2);
        assert_eq!(ids(&conn, "muellim", None), ["b"]);
    }

    #[test]
    fn a_full_text_reads_no_further_page() {
        let conn = store();
        // The entry page alone fills the text, cut at a word break 6 characters short (14,285
        // words of 6 letters and their spaces).
        let long: String = "sözlər ".repeat(MAX_TEXT_CHARS / 7 + 10);
        let entry = prepare_blob(format!("<p>{long}</p>").into_bytes(), true, 3).expect("blob");
        write_blob(&conn, &entry).expect("write");
        // A later page whose short word would fit in what is left, and one that is not stored
        // at all: neither is read.
        let short = prepare_blob(b"<p>ab</p>".to_vec(), true, 3).expect("blob");
        write_blob(&conn, &short).expect("write");
        let page = |path: &str, hash| FileEntry {
            path: path.to_owned(),
            hash,
            size: 10,
            media_type: "text/html".to_owned(),
        };
        let files = [
            page("index.html", entry.hash),
            page("more.html", short.hash),
            page("missing.html", Hash::of(b"not stored")),
        ];
        let text = lesson_text(&conn, "index.html", &files);
        assert_eq!(text.chars().count(), MAX_TEXT_CHARS - 6);
        assert!(
            text.ends_with("sözlər"),
            "{:?}",
            text.chars().rev().take(10).collect::<String>()
        );
        // Without the entry page the others are read: the short word, and the missing page
        // left out.
        assert_eq!(lesson_text(&conn, "index.html", &files[1..]), "ab");
    }

    #[test]
    fn hostile_queries_are_words() {
        let conn = store();
        put(&conn, "a", "AND OR NEAR", "en", "<p>near and or not</p>");
        for q in ["\"", "*", "NEAR(", "-", "AND OR", "a:b", "^x", "(((", "NOT", "\"\"\"*"] {
            let fts = fts_query(&query_words(q), Combine::All);
            if fts.is_empty() {
                continue;
            }
            search_index(&conn, &fts, None, 10).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
        assert_eq!(ids(&conn, "AND OR", None), ["a"]);
        assert_eq!(ids(&conn, "NEAR(", None), ["a"]);
    }
}

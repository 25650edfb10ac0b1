//! The lesson source format (DESIGN.md §3): `lesson.toml` metadata and the rules a lesson
//! folder must follow. Pure validation: no database, no HTTP.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The largest grade a lesson may have (0 means "not graded").
pub const MAX_GRADE: u8 = 11;

/// What `lesson.toml` holds, after validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LessonMeta {
    pub id: String,
    pub title: String,
    pub language: String,
    pub grade: u8,
    pub subject: String,
    #[serde(default)]
    pub summary: String,
    #[serde(default = "default_entry")]
    pub entry: String,
    #[serde(default)]
    pub order: i64,
}

fn default_entry() -> String {
    "index.html".to_owned()
}

/// `lesson.toml` as written, before validation (unknown keys are refused here).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    id: String,
    title: String,
    language: String,
    grade: i64,
    subject: String,
    #[serde(default)]
    summary: String,
    #[serde(default = "default_entry")]
    entry: String,
    #[serde(default)]
    order: i64,
}

/// A problem with a lesson folder, phrased for the teacher who wrote it: which file, which
/// lesson, what is wrong and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LessonError {
    pub file: PathBuf,
    pub lesson: Option<String>,
    pub problem: String,
    pub fix: String,
}

impl LessonError {
    pub fn new(file: &Path, lesson: Option<&str>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        LessonError {
            file: file.to_path_buf(),
            lesson: lesson.map(str::to_owned),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for LessonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(id) = &self.lesson {
            write!(f, " (lesson {id})")?;
        }
        write!(f, ": {}\n  fix: {}", self.problem, self.fix)
    }
}

impl std::error::Error for LessonError {}

/// Parses and validates the text of a `lesson.toml`; `file` is only used in messages.
pub fn parse_meta(text: &str, file: &Path) -> Result<LessonMeta, LessonError> {
    let raw: RawMeta = toml::from_str(text).map_err(|e| toml_error(&e, text, file))?;
    let id = raw.id.trim().to_owned();
    let lesson = Some(id.as_str());
    if !valid_id(&id) {
        return Err(LessonError::new(
            file,
            None,
            format!("bad id {:?}", raw.id),
            "use 1 to 64 characters: lowercase letters a-z, digits and '-', starting with a letter or digit (for example \"math-4-fractions\")",
        ));
    }
    let required = [("title", &raw.title), ("subject", &raw.subject)];
    for (key, value) in required {
        if value.trim().is_empty() {
            return Err(LessonError::new(
                file,
                lesson,
                format!("`{key}` is empty"),
                format!("write a {key} between the quotes"),
            ));
        }
    }
    let language = raw.language.trim().to_ascii_lowercase();
    if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(LessonError::new(
            file,
            lesson,
            format!("bad language {:?}", raw.language),
            "use a two- or three-letter language code: \"az\", \"ru\" or \"en\"",
        ));
    }
    if !(0..=i64::from(MAX_GRADE)).contains(&raw.grade) {
        return Err(LessonError::new(
            file,
            lesson,
            format!("bad grade {}", raw.grade),
            format!("use a whole number from 1 to {MAX_GRADE}, or 0 for a lesson without a grade"),
        ));
    }
    let entry = raw.entry.trim().to_owned();
    if let Err(problem) = check_relative_path(&entry) {
        return Err(LessonError::new(
            file,
            lesson,
            format!("bad entry {:?}: {problem}", raw.entry),
            "name a file inside the lesson folder with a relative path such as \"index.html\"",
        ));
    }
    Ok(LessonMeta {
        grade: u8::try_from(raw.grade).unwrap_or(0),
        id,
        title: raw.title.trim().to_owned(),
        language,
        subject: raw.subject.trim().to_owned(),
        summary: raw.summary.trim().to_owned(),
        entry,
        order: raw.order,
    })
}

fn toml_error(err: &toml::de::Error, text: &str, file: &Path) -> LessonError {
    let line = err
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    let where_ = line.map(|l| format!(" at line {l}")).unwrap_or_default();
    let message = err.message();
    let fix = if message.contains("unknown field") {
        "remove or rename that key; allowed keys are id, title, language, grade, subject, summary, entry, order"
    } else if message.contains("missing field") {
        "add the missing key; required keys are id, title, language, grade and subject"
    } else {
        "correct the TOML syntax: text values need double quotes, for example title = \"Kəsrlər\""
    };
    LessonError::new(file, None, format!("lesson.toml is not valid{where_}: {message}"), fix)
}

/// A lesson id: `[a-z0-9][a-z0-9-]{0,63}`.
pub fn valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Checks a path inside a lesson: relative, `/`-separated, no `..`, `.` or empty parts, no
/// backslashes or control characters. Used for `entry` and for every URL path served.
pub fn check_relative_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("the path is empty");
    }
    if path.starts_with('/') || path.contains(':') && path.as_bytes().get(1) == Some(&b':') {
        return Err("the path is absolute");
    }
    if path.contains('\\') {
        return Err("the path has a backslash; use '/' between folders");
    }
    if path.chars().any(char::is_control) {
        return Err("the path has a control character");
    }
    for part in path.split('/') {
        match part {
            "" => return Err("the path has an empty part ('//' or a trailing '/')"),
            "." | ".." => return Err("the path has '.' or '..' in it"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LessonMeta, LessonError> {
        parse_meta(text, Path::new("l/lesson.toml"))
    }

    const GOOD: &str = "id = \"math-4\"\ntitle = \"Kəsrlər\"\nlanguage = \"az\"\ngrade = 4\nsubject = \"Riyaziyyat\"\n";

    #[test]
    fn good_meta_gets_defaults() {
        let meta = parse(GOOD).expect("valid");
        assert_eq!(meta.entry, "index.html");
        assert_eq!(meta.grade, 4);
        assert_eq!(meta.order, 0);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = parse(&format!("{GOOD}colour = \"red\"\n")).expect_err("unknown key");
        assert!(err.problem.contains("colour"), "{err}");
        assert!(err.problem.contains("line 6"), "{err}");
        assert!(err.fix.contains("allowed keys"), "{err}");
    }

    #[test]
    fn bad_toml_names_its_line() {
        let err = parse("id = \"a\"\ntitle = no quotes\n").expect_err("bad toml");
        assert!(err.problem.contains("line 2"), "{err}");
    }

    #[test]
    fn bad_ids_are_refused() {
        for id in ["", "Math", "-a", "a_b", "a b", &"a".repeat(65)] {
            let text = GOOD.replace("math-4", id);
            assert!(parse(&text).is_err(), "{id:?} accepted");
        }
        assert!(valid_id("0-a"));
    }

    #[test]
    fn entry_paths_are_checked() {
        for entry in ["../x.html", "/etc/passwd", "a//b", "a\\b.html", "C:x", "./a"] {
            let text = format!("{GOOD}entry = {entry:?}\n");
            assert!(parse(&text).is_err(), "{entry:?} accepted");
        }
        assert!(check_relative_path("img/a.png").is_ok());
    }

    #[test]
    fn grade_out_of_range() {
        assert!(parse(&GOOD.replace("grade = 4", "grade = 12")).is_err());
        assert!(parse(&GOOD.replace("grade = 4", "grade = -1")).is_err());
    }
}

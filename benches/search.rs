//! Search latency with 10,000 lessons: `Library::search` against a plain `LIKE '%word%'` scan
//! over the same text in the same SQLite file, measured side by side (see bench/README.md).
//!
//! `cargo bench --bench search [-- --lessons N] [--data DIR] [--runs R]`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dars::service::{ImportOptions, Library, Progress, SearchQuery};
use dars::text::{fold, visible_text};

fn main() {
    let args = Args::parse();
    println!("uptime: {}", uptime());
    let vocab = Vocab::from_samples();
    let (library, dir, made) = store(&args, &vocab);
    let conn = rusqlite::Connection::open(dir.join("dars.sqlite")).expect("open for reference");
    let lessons: i64 = conn
        .query_row("SELECT count(*) FROM lessons", [], |r| r.get(0))
        .expect("count");
    let text_bytes: i64 = conn
        .query_row("SELECT sum(length(CAST(body AS BLOB))) FROM lesson_text", [], |r| {
            r.get(0)
        })
        .expect("text size");
    let file_bytes = std::fs::metadata(dir.join("dars.sqlite")).map_or(0, |m| m.len());
    println!(
        "store: {lessons} lessons, {:.1} MB of page text, database file {:.1} MB",
        text_bytes as f64 / 1e6,
        file_bytes as f64 / 1e6
    );

    let queries = vocab.queries();
    let mut kinds: Vec<(&str, Vec<Duration>, Vec<Duration>)> = Vec::new();
    println!("\n| query | kind | results | search median | LIKE median | search / LIKE |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for (kind, text) in &queries {
        let query = SearchQuery {
            text: text.clone(),
            language: None,
            limit: 20,
        };
        let results = library.search(&query).expect("search").len();
        let words: Vec<String> = text.split_whitespace().map(|w| format!("%{w}%")).collect();
        let mut ours = Vec::new();
        let mut reference = Vec::new();
        for _ in 0..args.runs {
            let start = Instant::now();
            std::hint::black_box(library.search(&query).expect("search"));
            ours.push(start.elapsed());
            let start = Instant::now();
            std::hint::black_box(like_scan(&conn, &words));
            reference.push(start.elapsed());
        }
        println!(
            "| `{text}` | {kind} | {results} | {} | {} | {:.3} |",
            ms(percentile(&mut ours, 50.0)),
            ms(percentile(&mut reference, 50.0)),
            percentile(&mut ours, 50.0).as_secs_f64() / percentile(&mut reference, 50.0).as_secs_f64()
        );
        match kinds.iter_mut().find(|(k, _, _)| k == kind) {
            Some((_, o, r)) => {
                o.extend(ours);
                r.extend(reference);
            }
            None => kinds.push((kind, ours, reference)),
        }
    }
    let mut all_ours: Vec<Duration> = kinds.iter().flat_map(|(_, o, _)| o.clone()).collect();
    let mut all_ref: Vec<Duration> = kinds.iter().flat_map(|(_, _, r)| r.clone()).collect();
    println!("\n| kind | samples | search median / p95 / p99 | LIKE median / p95 / p99 | median ratio |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (kind, ours, reference) in
        kinds
            .iter_mut()
            .map(|(k, o, r)| (*k, o, r))
            .chain([("all", &mut all_ours, &mut all_ref)])
    {
        println!(
            "| {kind} | {} | {} / {} / {} | {} / {} / {} | {:.3} |",
            ours.len(),
            ms(percentile(ours, 50.0)),
            ms(percentile(ours, 95.0)),
            ms(percentile(ours, 99.0)),
            ms(percentile(reference, 50.0)),
            ms(percentile(reference, 95.0)),
            ms(percentile(reference, 99.0)),
            percentile(ours, 50.0).as_secs_f64() / percentile(reference, 50.0).as_secs_f64()
        );
    }
    let p99 = percentile(&mut all_ours, 99.0);
    println!(
        "\ntarget under 50 ms per query: p99 {} -> {}",
        ms(p99),
        if p99 < Duration::from_millis(50) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!("uptime: {}", uptime());
    drop(library);
    if made && args.data.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The reference: what a plain SQL scan does for the same words (every word somewhere in the
/// title, summary or text; no folding, no ranking), counting the matches.
fn like_scan(conn: &rusqlite::Connection, patterns: &[String]) -> i64 {
    let clause = (1..=patterns.len())
        .map(|i| format!("(l.title LIKE ?{i} OR l.summary LIKE ?{i} OR t.body LIKE ?{i})"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let sql = format!("SELECT count(*) FROM lessons l JOIN lesson_text t ON t.lesson = l.rowid WHERE {clause}");
    conn.prepare_cached(&sql)
        .expect("prepare")
        .query_row(rusqlite::params_from_iter(patterns), |r| r.get(0))
        .expect("scan")
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let rank = ((p / 100.0) * (samples.len() as f64 - 1.0)).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

fn uptime() -> String {
    std::process::Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

struct Args {
    lessons: usize,
    runs: usize,
    data: Option<PathBuf>,
}

impl Args {
    fn parse() -> Self {
        let mut args = Args {
            lessons: 10_000,
            runs: 30,
            data: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--lessons" => args.lessons = it.next().and_then(|v| v.parse().ok()).expect("--lessons N"),
                "--runs" => args.runs = it.next().and_then(|v| v.parse().ok()).expect("--runs N"),
                "--data" => args.data = it.next().map(PathBuf::from),
                _ => {} // cargo bench passes --bench
            }
        }
        args
    }
}

/// Opens the store at `--data` when it already holds the lessons, else builds it (there, or in
/// a temp folder removed at the end). Returns the library, its folder and whether it was built.
fn store(args: &Args, vocab: &Vocab) -> (Library, PathBuf, bool) {
    let dir = args
        .data
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("dars-search-bench-{}", std::process::id())));
    if dir.join("dars.sqlite").exists() {
        let library = Library::open(&dir).expect("open store");
        if library.count_lessons().expect("count") as usize >= args.lessons {
            println!("reusing the store in {}", dir.display());
            return (library, dir, false);
        }
    }
    let src = dir.with_extension("src");
    let _ = std::fs::remove_dir_all(&src);
    let start = Instant::now();
    let mut rng = Rng(0x5EED_1234_5678_9ABC);
    let mut bytes = 0usize;
    for i in 0..args.lessons {
        bytes += vocab.write_lesson(&src, i, &mut rng);
    }
    println!(
        "generated {} lessons, {:.1} MB of HTML, in {:.1} s",
        args.lessons,
        bytes as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    let library = Library::open(&dir).expect("open store");
    let start = Instant::now();
    let report = library
        .import_folder(&src, &ImportOptions::default(), &Progress::new())
        .expect("import");
    println!(
        "imported {} lessons (indexed in the same transactions) in {:.1} s",
        report.added.len() + report.updated.len() + report.unchanged.len(),
        start.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&src);
    (library, dir, true)
}

/// A small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The words of the sample lessons (real Azerbaijani, Russian and English), most frequent
/// first, per language.
struct Vocab {
    languages: Vec<(String, Vec<String>)>,
}

impl Vocab {
    fn from_samples() -> Self {
        let content = Path::new(env!("CARGO_MANIFEST_DIR")).join("content");
        let mut counts: std::collections::BTreeMap<String, std::collections::HashMap<String, usize>> =
            std::collections::BTreeMap::new();
        for lesson in std::fs::read_dir(&content).expect("content/") {
            let dir = lesson.expect("entry").path();
            let Ok(toml) = std::fs::read_to_string(dir.join("lesson.toml")) else {
                continue;
            };
            let language = toml
                .lines()
                .find_map(|l| l.strip_prefix("language = \""))
                .and_then(|l| l.strip_suffix('"'))
                .expect("language")
                .to_owned();
            for page in std::fs::read_dir(&dir).expect("lesson dir") {
                let path = page.expect("entry").path();
                if path.extension().is_some_and(|e| e == "html") {
                    let text = visible_text(&std::fs::read(&path).expect("page"), 1_000_000).text;
                    let words = counts.entry(language.clone()).or_default();
                    for word in text
                        .split(|c: char| !c.is_alphabetic())
                        .filter(|w| w.chars().count() >= 2)
                    {
                        *words.entry(word.to_lowercase()).or_default() += 1;
                    }
                }
            }
        }
        let languages = counts
            .into_iter()
            .map(|(language, words)| {
                let mut words: Vec<(String, usize)> = words.into_iter().collect();
                words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                (language, words.into_iter().map(|(w, _)| w).collect())
            })
            .collect();
        Vocab { languages }
    }

    fn words(&self, language: &str) -> &[String] {
        &self
            .languages
            .iter()
            .find(|(l, _)| l == language)
            .expect("language in samples")
            .1
    }

    /// A word drawn with Zipf-like frequencies (rank r about as likely as 1/r).
    fn word<'a>(&'a self, words: &'a [String], rng: &mut Rng) -> &'a str {
        let rank = ((words.len() as f64 + 1.0).powf(rng.unit()) - 1.0) as usize;
        &words[rank.min(words.len() - 1)]
    }

    /// A sentence of `min` to `min + spread - 1` words.
    fn sentence(&self, words: &[String], rng: &mut Rng, min: usize, spread: usize) -> String {
        let len = min + rng.below(spread);
        let mut s: Vec<String> = (0..len).map(|_| self.word(words, rng).to_owned()).collect();
        if let Some(first) = s.first_mut() {
            let mut chars = first.chars();
            *first = chars
                .next()
                .map_or(String::new(), |c| c.to_uppercase().chain(chars).collect());
        }
        s.join(" ") + "."
    }

    /// Writes lesson `i` under `root`; returns the bytes of its page.
    fn write_lesson(&self, root: &Path, i: usize, rng: &mut Rng) -> usize {
        let language = ["az", "az", "az", "az", "az", "ru", "ru", "ru", "en", "en"][i % 10];
        let words = self.words(language);
        let id = format!("bench-{i:05}-{language}");
        let title = self.sentence(words, rng, 3, 4);
        let title = title.trim_end_matches('.');
        let summary = self.sentence(words, rng, 15, 10);
        let mut html = format!(
            "<!doctype html>\n<html lang=\"{language}\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
             <link rel=\"stylesheet\" href=\"style.css\">\n<style>main {{ max-width: 40em }}</style>\n</head>\n<body>\n\
             <header><h1>{title}</h1></header>\n<main>\n"
        );
        for _ in 0..4 {
            html += &format!("<h2>{}</h2>\n", self.sentence(words, rng, 2, 3));
            for _ in 0..2 + rng.below(2) {
                let sentences: Vec<String> = (0..3 + rng.below(3))
                    .map(|_| self.sentence(words, rng, 6, 10))
                    .collect();
                html += &format!("<p>{}</p>\n", sentences.join(" "));
            }
            html += "<ul>\n";
            for _ in 0..3 {
                html += &format!("<li><strong>{}</strong></li>\n", self.sentence(words, rng, 4, 1));
            }
            html += "</ul>\n";
        }
        html += "</main>\n<script>document.documentElement.classList.add('js');</script>\n</body>\n</html>\n";
        let dir = root.join(&id);
        std::fs::create_dir_all(&dir).expect("lesson dir");
        let toml = format!(
            "id = \"{id}\"\ntitle = \"{title}\"\nlanguage = \"{language}\"\ngrade = {}\nsubject = \"Bench\"\nsummary = \"{summary}\"\n",
            1 + i % 11
        );
        std::fs::write(dir.join("lesson.toml"), toml).expect("toml");
        std::fs::write(dir.join("index.html"), &html).expect("html");
        html.len()
    }

    /// The query mix: Azerbaijani words holding ə ı ş ç ğ ö ü typed with and without those
    /// letters, common to rare, prefixes and two-word queries, plus Russian and English.
    fn queries(&self) -> Vec<(&'static str, String)> {
        let az: Vec<&String> = self
            .words("az")
            .iter()
            .filter(|w| w.chars().count() >= 4 && fold(w) != **w)
            .collect();
        let pick = |list: &[&String], at: usize| list[at.min(list.len() - 1)].clone();
        let mut queries = Vec::new();
        for at in [0, 5, 40, 200, 800] {
            let word = pick(&az, at);
            queries.push(("az, with letters", word.clone()));
            queries.push(("az, without", fold(&word)));
        }
        let prefix: String = pick(&az, 10).chars().take(4).collect();
        queries.push(("az, with letters", prefix.clone()));
        queries.push(("az, without", fold(&prefix)));
        let two = format!("{} {}", pick(&az, 3), pick(&az, 60));
        queries.push(("az, with letters", two.clone()));
        queries.push(("az, without", fold(&two)));
        let ru: Vec<&String> = self.words("ru").iter().filter(|w| w.chars().count() >= 4).collect();
        for at in [0, 50, 400] {
            queries.push(("ru", pick(&ru, at).to_uppercase()));
        }
        let en: Vec<&String> = self.words("en").iter().filter(|w| w.chars().count() >= 4).collect();
        for at in [0, 50, 400] {
            queries.push(("en", pick(&en, at)));
        }
        queries
    }
}

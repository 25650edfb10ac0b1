//! Signed packages end to end, through the real binary, the library and real HTTP: publish,
//! import, serve, export onto a stick (a real FAT32 image), verify; sequence numbers and
//! downgrades; zstd dictionaries; tampered packages; imports killed at random points; a full
//! disk; a stick pulled out in the middle of an import; keygen; checking without storing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dars::keys::{PublicKey, SecretKey};
use dars::package::{Manifest, Signed, decode_part, lesson_part_path};
use dars::service::package::{DictionaryChoice, ImportPackageOptions, PackageReport, PublishOptions, PublishReport};
use dars::service::{Library, Progress, ServiceError};
use dars::store::{Hash, LessonFilter};
use tempfile::TempDir;

use crate::common::{Rng, TestServer, client, gunzip, pseudo_random_bytes, pseudo_random_text, unzstd};

// ---------------------------------------------------------------------------------------------
// Running the binary

use crate::common::{dars, run, run_ok, text};

/// Runs `cmd` and checks it failed (nonzero, no panic); returns stderr and stdout together.
fn run_fail(cmd: &mut Command) -> String {
    let out = run(cmd);
    let all = format!("{}\n{}", text(&out.stderr), text(&out.stdout));
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded but should have failed:\n{all}"
    );
    assert!(!all.contains("panicked"), "{cmd:?} panicked:\n{all}");
    all
}

/// Whether `tool` is on the PATH (or in the sbin folders root's PATH usually has).
fn have(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/sbin", "/usr/sbin", "/usr/local/sbin"].iter().map(PathBuf::from))
        .any(|dir| dir.join(tool).is_file())
}

/// A test that needs a system facility it cannot get: skip with the reason, unless
/// `DARS_REQUIRE_FAT=1` (CI) says the facility must be there.
fn unavailable(why: &str) {
    if std::env::var("DARS_REQUIRE_FAT").is_ok_and(|v| v == "1") {
        panic!("{why} (DARS_REQUIRE_FAT=1, so this test must run)");
    }
    eprintln!("SKIPPED: {why}; set DARS_REQUIRE_FAT=1 to make this a failure");
}

// ---------------------------------------------------------------------------------------------
// Lesson sources

/// A lesson's files as written to its folder: path -> bytes.
type Files = BTreeMap<String, Vec<u8>>;
/// Lessons by id.
type Lessons = BTreeMap<String, Files>;

/// Writes lesson folder `root/id` with a lesson.toml and `files`.
fn write_lesson_folder(root: &Path, id: &str, title: &str, language: &str, grade: u8, files: &Files) {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).expect("lesson dir");
    let toml = format!(
        "id = \"{id}\"\ntitle = \"{title}\"\nlanguage = \"{language}\"\ngrade = {grade}\nsubject = \"Elm\"\nsummary = \"{title}: qısa xülasə\"\n"
    );
    std::fs::write(dir.join("lesson.toml"), toml).expect("lesson.toml");
    for (path, bytes) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("subdir");
        std::fs::write(file, bytes).expect("file");
    }
}

fn hashes(files: &Files) -> BTreeMap<String, Hash> {
    files.iter().map(|(p, b)| (p.clone(), Hash::of(b))).collect()
}

const AZ_WORDS: &[&str] = &[
    "dərs",
    "kəsr",
    "bitki",
    "günəş",
    "torpaq",
    "su",
    "hesablama",
    "müəllim",
    "şagird",
    "tapşırıq",
    "nümunə",
    "cavab",
    "sual",
    "bölmə",
    "toplama",
    "çıxma",
    "vurma",
    "ədəd",
    "fotosintez",
    "enerji",
    "işıq",
    "kölgə",
    "bucaq",
    "üçbucaq",
    "dairə",
    "sahə",
    "perimetr",
    "çəki",
    "sürət",
    "zaman",
    "məsafə",
    "hüceyrə",
    "yarpaq",
    "kök",
    "gövdə",
    "çiçək",
    "toxum",
    "meyvə",
    "heyvan",
    "quş",
    "balıq",
    "iqlim",
    "yağış",
    "qar",
    "külək",
    "dağ",
    "çay",
    "dəniz",
    "ölkə",
    "şəhər",
    "kənd",
    "tarix",
    "dil",
    "söz",
    "cümlə",
    "hərf",
    "səs",
    "və",
    "ilə",
    "bu",
    "o",
    "bir",
    "iki",
    "üç",
    "çox",
    "az",
    "böyük",
    "kiçik",
    "yeni",
    "köhnə",
    "necə",
    "niyə",
    "harada",
];
const RU_WORDS: &[&str] = &[
    "урок",
    "дробь",
    "растение",
    "солнце",
    "почва",
    "вода",
    "задача",
    "учитель",
    "ученик",
    "пример",
    "ответ",
    "вопрос",
    "деление",
    "сложение",
    "вычитание",
    "умножение",
    "число",
    "энергия",
    "свет",
    "тень",
    "угол",
    "треугольник",
    "круг",
    "площадь",
    "скорость",
    "время",
    "расстояние",
    "клетка",
    "лист",
    "корень",
    "цветок",
    "семя",
    "плод",
    "животное",
    "птица",
    "рыба",
    "климат",
    "дождь",
    "снег",
    "ветер",
    "гора",
    "река",
    "море",
    "и",
    "в",
    "на",
    "это",
    "как",
    "почему",
    "где",
    "один",
    "два",
    "три",
    "много",
    "мало",
    "новый",
];
const EN_WORDS: &[&str] = &[
    "lesson", "fraction", "plant", "sun", "soil", "water", "exercise", "teacher", "student", "example", "answer",
    "question", "division", "addition", "number", "energy", "light", "shadow", "angle", "triangle", "circle", "area",
    "speed", "time", "distance", "cell", "leaf", "root", "flower", "seed", "fruit", "animal", "bird", "fish",
    "climate", "rain", "snow", "wind", "mountain", "river", "sea", "the", "and", "of", "is", "a", "to", "in", "we",
    "see", "how", "why", "where", "one", "two", "three", "many", "new", "old",
];

fn words_for(language: &str) -> &'static [&'static str] {
    match language {
        "az" => AZ_WORDS,
        "ru" => RU_WORDS,
        _ => EN_WORDS,
    }
}

fn sentence(rng: &mut Rng, words: &[&str]) -> String {
    let n = 5 + rng.below(14) as usize;
    let mut out = String::new();
    for i in 0..n {
        let word = words[rng.below(words.len() as u64) as usize];
        if i == 0 {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        } else {
            out.push(' ');
            out.push_str(word);
        }
        if i + 1 < n && rng.below(9) == 0 {
            out.push(',');
        }
    }
    out.push(if rng.below(7) == 0 { '?' } else { '.' });
    out
}

/// A lesson page as authors write them: the same head, navigation and footer on every page,
/// and a varied body of paragraphs, lists, tables, figures and exercises, about `len` bytes.
fn html_page(rng: &mut Rng, language: &str, title: &str, page: usize, len: usize) -> Vec<u8> {
    let words = words_for(language);
    let mut out = format!(
        "<!doctype html>\n<html lang=\"{language}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} — {page}</title>\n<link rel=\"stylesheet\" href=\"style.css\">\n</head>\n<body>\n\
         <header class=\"site-header\">\n  <nav class=\"breadcrumbs\" aria-label=\"breadcrumbs\">\
         <a href=\"../../\">Dərslər</a> › <a href=\"./\">{title}</a> › <span>{page}</span></nav>\n</header>\n\
         <main id=\"content\" class=\"lesson\">\n<h1>{title}</h1>\n"
    );
    let mut section = 0;
    while out.len() < len {
        section += 1;
        out.push_str(&format!(
            "<section id=\"s{section}\" class=\"part\">\n<h2>{section}. {}</h2>\n",
            sentence(rng, words).trim_end_matches(['.', '?'])
        ));
        match rng.below(6) {
            0 | 1 => {
                for _ in 0..1 + rng.below(4) {
                    out.push_str("<p>");
                    for _ in 0..2 + rng.below(5) {
                        out.push_str(&sentence(rng, words));
                        out.push(' ');
                    }
                    out.push_str("</p>\n");
                }
            }
            2 => {
                out.push_str("<ul class=\"points\">\n");
                for _ in 0..3 + rng.below(6) {
                    out.push_str(&format!("  <li>{}</li>\n", sentence(rng, words)));
                }
                out.push_str("</ul>\n");
            }
            3 => {
                out.push_str("<table class=\"data\">\n<thead><tr><th>№</th><th>a</th><th>b</th><th>a + b</th></tr></thead>\n<tbody>\n");
                for row in 1..3 + rng.below(8) {
                    let (a, b) = (rng.below(1000), rng.below(1000));
                    out.push_str(&format!(
                        "<tr><td>{row}</td><td>{a}</td><td>{b}</td><td>{}</td></tr>\n",
                        a + b
                    ));
                }
                out.push_str("</tbody>\n</table>\n");
            }
            4 => {
                let n = rng.below(40);
                out.push_str(&format!(
                    "<figure class=\"illustration\">\n  <img src=\"img/figure-{n}.png\" alt=\"{}\" width=\"480\" height=\"320\" loading=\"lazy\">\n  <figcaption>{}</figcaption>\n</figure>\n",
                    sentence(rng, words),
                    sentence(rng, words)
                ));
            }
            _ => {
                out.push_str("<div class=\"exercise\">\n<h3>Tapşırıq</h3>\n<ol>\n");
                for _ in 0..2 + rng.below(4) {
                    let (a, b) = (1 + rng.below(12), 2 + rng.below(12));
                    out.push_str(&format!(
                        "  <li>{} <span class=\"math\">{a}/{b} + {b}/{a} = ?</span></li>\n",
                        sentence(rng, words)
                    ));
                }
                out.push_str("</ol>\n<details><summary>Cavab</summary><p>");
                out.push_str(&sentence(rng, words));
                out.push_str("</p></details>\n</div>\n");
            }
        }
        out.push_str("</section>\n");
    }
    out.push_str(&format!(
        "</main>\n<nav class=\"pager\"><a rel=\"prev\" href=\"page-{:02}.html\">‹</a> <a rel=\"next\" href=\"page-{:02}.html\">›</a></nav>\n\
         <footer class=\"site-footer\"><p>© Azərbaycan Respublikasının Elm və Təhsil Nazirliyi. Dərs materialları pulsuzdur.</p></footer>\n\
         </body>\n</html>\n",
        page.saturating_sub(1),
        page + 1
    ));
    out.into_bytes()
}

fn stylesheet(seed: u64) -> Vec<u8> {
    format!(
        "body {{ font-family: system-ui, sans-serif; margin: 0 auto; max-width: 42rem; padding: 0 1rem; line-height: 1.5 }}\n\
         h1 {{ color: #{:06x} }}\n.exercise {{ border-left: 4px solid #{:06x}; padding: .5rem 1rem }}\n\
         table.data td, table.data th {{ border: 1px solid #ccc; padding: .25rem .5rem }}\n",
        seed * 7919 % 0xff_ffff,
        seed * 104_729 % 0xff_ffff
    )
    .into_bytes()
}

/// Bytes that look like a media file of `kind` (a real header, then noise that does not compress).
fn media(kind: &str, len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = pseudo_random_bytes(len, seed);
    let header: &[u8] = match kind {
        "png" => b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
        "mp4" => b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom",
        _ => b"",
    };
    bytes[..header.len()].copy_from_slice(header);
    bytes
}

/// A few varied lessons in three languages (about 1.8 MB): pages, a stylesheet, an SVG,
/// pictures and a 1.2 MB video in a sub-folder. Version 2 changes a file of every lesson,
/// changes the video, drops a file from one lesson and adds a file to another.
fn small_lessons(root: &Path, version: u64) -> Lessons {
    let specs: [(&str, &str, &str, u8); 4] = [
        ("cebr-7-tenlikler", "Tənliklər", "az", 7),
        ("fizika-8-isiq", "İşığın sınması", "az", 8),
        ("biology-5-plants", "How plants eat", "en", 5),
        ("russkij-3-bukvy", "Буквы и звуки", "ru", 3),
    ];
    let mut lessons = Lessons::new();
    for (i, (id, title, language, grade)) in specs.iter().enumerate() {
        let i = i as u64;
        let mut rng = Rng::new(100 + i);
        let mut files = Files::new();
        // The entry page changes in version 2; the second page does not.
        let mut entry_rng = Rng::new(200 + i * 10 + version);
        files.insert(
            "index.html".to_owned(),
            html_page(&mut entry_rng, language, title, 0, 12_000 + 1000 * i as usize),
        );
        files.insert(
            "page-01.html".to_owned(),
            html_page(&mut rng, language, title, 1, 30_000),
        );
        files.insert("style.css".to_owned(), stylesheet(i));
        files.insert(
            "img/figure-1.png".to_owned(),
            media("png", 40_000 + 5000 * i as usize, 300 + i),
        );
        match i {
            0 => {
                files.insert(
                    "img/graph.svg".to_owned(),
                    format!(
                        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 100 100\"><path d=\"M0 100 L{} 0\"/></svg>\n",
                        50 + version
                    )
                    .into_bytes(),
                );
            }
            1 => {
                files.insert("media/video.mp4".to_owned(), media("mp4", 1_200_000, 400 + version));
            }
            2 if version == 1 => {
                files.insert("old-notes.txt".to_owned(), b"notes for the teacher\n".to_vec());
            }
            3 if version == 2 => {
                files.insert(
                    "page-02.html".to_owned(),
                    html_page(&mut rng, language, title, 2, 8_000),
                );
            }
            _ => {}
        }
        write_lesson_folder(root, id, &format!("{title} v{version}"), language, *grade, &files);
        lessons.insert((*id).to_owned(), files);
    }
    lessons
}

/// Local lessons a teacher wrote (imported from a folder, unsigned).
fn local_lessons(root: &Path) -> Lessons {
    let mut lessons = Lessons::new();
    for (i, id) in ["teacher-notes", "sinif-4-oyun"].iter().enumerate() {
        let mut rng = Rng::new(900 + i as u64);
        let mut files = Files::new();
        files.insert("index.html".to_owned(), html_page(&mut rng, "az", id, 0, 9_000));
        files.insert("photo.png".to_owned(), media("png", 30_000, 910 + i as u64));
        write_lesson_folder(root, id, &format!("Müəllimin dərsi {i}"), "az", 4, &files);
        lessons.insert((*id).to_owned(), files);
    }
    lessons
}

/// `count` lessons of `pages` pages (about `page_len` bytes each), a picture of `image_len`,
/// and every `video_every`-th lesson a video of `video_len`. In version 2 every lesson gets a
/// changed entry page and picture, and every other video changes.
struct Bulk {
    count: usize,
    pages: usize,
    page_len: usize,
    image_len: usize,
    video_every: usize,
    video_len: usize,
}

fn bulk_id(i: usize) -> String {
    format!("bulk-{i:03}")
}

fn bulk_lessons(root: &Path, spec: &Bulk, version: u64) -> Lessons {
    let mut lessons = Lessons::new();
    for i in 0..spec.count {
        let language = ["az", "ru", "en"][i % 3];
        let title = format!("Dərs {i}");
        let mut files = Files::new();
        let seed = |j: u64, changes: bool| (i as u64) * 1000 + j * 10 + if changes { version } else { 0 };
        for j in 0..spec.pages {
            let name = if j == 0 {
                "index.html".to_owned()
            } else {
                format!("page-{j:02}.html")
            };
            let changes = j == 0 || (i + j) % 5 == 0;
            let len = spec.page_len / 2 + (seed(j as u64, false) as usize * 7919) % spec.page_len;
            files.insert(name, pseudo_random_text(len, seed(j as u64, changes)));
        }
        files.insert("style.css".to_owned(), stylesheet(i as u64));
        files.insert(
            "img/picture.png".to_owned(),
            media("png", spec.image_len, seed(90, true)),
        );
        if i % spec.video_every == 0 {
            let changes = (i / spec.video_every).is_multiple_of(2);
            files.insert(
                "media/film.mp4".to_owned(),
                media("mp4", spec.video_len + i * 1000, seed(91, changes)),
            );
        }
        write_lesson_folder(root, &bulk_id(i), &title, language, (i % 11) as u8 + 1, &files);
        lessons.insert(bulk_id(i), files);
    }
    lessons
}

// ---------------------------------------------------------------------------------------------
// Publishers, packages and stores

/// A publisher's key pair, its secret key file, and a config file that trusts it.
struct Publisher {
    dir: TempDir,
    secret_text: String,
    public: PublicKey,
}

impl Publisher {
    fn new() -> Publisher {
        let dir = tempfile::tempdir().expect("key dir");
        let secret = SecretKey::generate().expect("generate key");
        let public = secret.public();
        let secret_text = secret.to_file_text();
        std::fs::write(dir.path().join("publisher.key"), &secret_text).expect("key file");
        std::fs::write(
            dir.path().join("dars.toml"),
            format!("trusted_keys = [\"{}\"]\n", public.to_text()),
        )
        .expect("config");
        Publisher {
            dir,
            secret_text,
            public,
        }
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("publisher.key")
    }

    /// A config file whose `trusted_keys` holds this publisher's key.
    fn config(&self) -> PathBuf {
        self.dir.path().join("dars.toml")
    }

    fn fingerprint(&self) -> String {
        self.public.fingerprint()
    }

    fn options(&self, seq: u64) -> PublishOptions {
        let mut opts = PublishOptions::new(SecretKey::parse_file(&self.secret_text).expect("secret"));
        opts.seq = Some(seq);
        opts
    }

    /// Publishes `src` into `out` with sequence `seq` through the library.
    fn publish(&self, src: &Path, out: &Path, seq: u64) -> PublishReport {
        publish_with(src, out, &self.options(seq))
    }

    fn trusting(&self) -> ImportPackageOptions {
        ImportPackageOptions {
            trusted: vec![self.public],
            allow_downgrade: false,
        }
    }
}

fn publish_with(src: &Path, out: &Path, opts: &PublishOptions) -> PublishReport {
    let scan = dars::service::scan_folder(src).expect("scan");
    dars::service::package::publish(scan, out, opts, &Progress::new()).expect("publish")
}

/// Imports package `pkg` into the store at `data` through the library.
fn import_pkg(data: &Path, pkg: &Path, opts: &ImportPackageOptions) -> Result<PackageReport, ServiceError> {
    Library::open(data)
        .expect("open store")
        .import_package(pkg, opts, &Progress::new())
}

/// The (only) signed manifest of a package folder, with every lesson in full: a root's
/// lessons are read from their parts (checked against the root's hashes).
fn manifest_of(pkg: &Path) -> (PathBuf, Manifest) {
    let path = manifest_path(pkg);
    let bytes = std::fs::read(&path).expect("read manifest");
    let manifest = match Signed::parse(&bytes).expect("manifest json") {
        Signed::Whole(manifest) => manifest,
        Signed::Root(root) => Manifest {
            lessons: root
                .lessons
                .iter()
                .map(|l| {
                    let hash = l.part().expect("part hash");
                    let file = std::fs::read(pkg.join(lesson_part_path(hash))).expect("read part");
                    decode_part(&l.id, hash, &file).expect("part")
                })
                .collect(),
            format: root.format,
            publisher: root.publisher,
            seq: root.seq,
            created: root.created,
            dictionary: root.dictionary,
        },
    };
    (path, manifest)
}

/// Every file under `dir`: relative path -> bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("inside").to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in tree(from) {
        let target = to.join(rel);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::write(target, bytes).expect("copy");
    }
}

/// One visible lesson as the store shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LessonState {
    title: String,
    origin: String,
    seq: i64,
    files: BTreeMap<String, Hash>,
}

/// What a store shows, and how many blobs it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    lessons: BTreeMap<String, LessonState>,
    publishers: Vec<(String, String, u64)>,
    blobs: i64,
}

fn lessons_of(lib: &Library) -> BTreeMap<String, LessonState> {
    lib.lessons(&LessonFilter::default())
        .expect("lessons")
        .into_iter()
        .map(|row| {
            let detail = lib.lesson(&row.meta.id).expect("lesson");
            let files = detail.file_list.iter().map(|f| (f.path.clone(), f.hash)).collect();
            (
                row.meta.id.clone(),
                LessonState {
                    title: row.meta.title.clone(),
                    origin: row.origin.as_db(),
                    seq: row.seq,
                    files,
                },
            )
        })
        .collect()
}

fn blob_count(data: &Path) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        data.join(dars::store::DB_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open sqlite");
    conn.query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
        .expect("count blobs")
}

fn snapshot(data: &Path) -> Snapshot {
    let lib = Library::open(data).expect("open store");
    Snapshot {
        lessons: lessons_of(&lib),
        publishers: lib.publishers().expect("publishers"),
        blobs: blob_count(data),
    }
}

/// Reads every file of `expected` back through the library (a fresh one: no cache) and
/// compares the bytes.
fn assert_stored(data: &Path, expected: &Lessons) {
    let lib = Library::open(data).expect("open store");
    for (id, files) in expected {
        let shown = lib.lesson(id).unwrap_or_else(|e| panic!("lesson {id}: {e}"));
        let paths: BTreeSet<&String> = shown.file_list.iter().map(|f| &f.path).collect();
        assert_eq!(paths, files.keys().collect(), "files of lesson {id}");
        for (path, bytes) in files {
            let hit = lib.find_file(id, path).unwrap_or_else(|e| panic!("{id}/{path}: {e}"));
            let stored = lib.read_raw(&hit.blob).unwrap_or_else(|e| panic!("{id}/{path}: {e}"));
            assert!(stored == *bytes, "{id}/{path}: stored bytes differ from the source");
        }
    }
}

fn is_text(path: &str) -> bool {
    [".html", ".css", ".svg", ".txt", ".js"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

async fn fetch(server: &TestServer, path: &str, accept: Option<&str>) -> (u16, Option<String>, Vec<u8>) {
    // reqwest is built with `rustls-no-provider` (for `dars sync`): building any client, even
    // for plain HTTP, needs a process-wide crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut request = client().get(server.url(path));
    if let Some(accept) = accept {
        request = request.header("accept-encoding", accept);
    }
    let resp = request.send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = resp.status().as_u16();
    let coding = resp
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().expect("header text").to_owned());
    let body = resp.bytes().await.expect("body").to_vec();
    (status, coding, body)
}

/// Every file of lesson `id` comes back byte for byte over HTTP, as identity and as gzip.
async fn assert_served(server: &TestServer, id: &str, files: &Files) {
    for (path, bytes) in files {
        let url = format!("/lessons/{id}/{path}");
        let (status, coding, body) = fetch(server, &url, None).await;
        assert_eq!(status, 200, "GET {url}");
        assert_eq!(coding, None, "GET {url} without Accept-Encoding");
        assert!(
            body == *bytes,
            "GET {url}: identity body differs ({} bytes, {} expected)",
            body.len(),
            bytes.len()
        );

        let (status, coding, body) = fetch(server, &url, Some("gzip")).await;
        assert_eq!(status, 200, "GET {url} gzip");
        match coding.as_deref() {
            Some("gzip") => assert!(gunzip(&body) == *bytes, "GET {url}: gzip body differs"),
            None => {
                assert!(
                    !is_text(path) || bytes.len() < 1024,
                    "GET {url}: text was not sent gzip"
                );
                assert!(body == *bytes, "GET {url}: body differs");
            }
            Some(other) => panic!("GET {url}: Accept-Encoding gzip got {other}"),
        }
    }
}

fn config_trusting(dir: &Path, keys: &[PublicKey]) -> PathBuf {
    let list: Vec<String> = keys.iter().map(|k| format!("\"{}\"", k.to_text())).collect();
    let path = dir.join("trusting.toml");
    std::fs::write(&path, format!("trusted_keys = [{}]\n", list.join(", "))).expect("config");
    path
}

// ---------------------------------------------------------------------------------------------
// Round trips

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_package_round_trips_through_import_serving_export_and_reimport() {
    let work = tempfile::tempdir().expect("work");
    let w = work.path();
    // The publisher makes a key with the real binary and publishes with it.
    let key = w.join("ministry.key");
    let printed = run_ok(dars().arg("keygen").arg("--out").arg(&key)).trim().to_owned();
    let public = PublicKey::parse(&printed).expect("keygen prints the public key");
    let fingerprint = public.fingerprint();
    let config = config_trusting(w, &[public]);
    let published = small_lessons(&w.join("src"), 1);
    let local = local_lessons(&w.join("local"));
    let pkg = w.join("pkg");
    let out = run_ok(
        dars()
            .arg("publish")
            .arg(w.join("src"))
            .arg("--key")
            .arg(&key)
            .arg("--out")
            .arg(&pkg)
            .args(["--seq", "7"]),
    );
    assert!(out.contains("published sequence 7: 4 lessons"), "{out}");

    let server = TestServer::start(|data| {
        let out = run_ok(
            dars()
                .arg("--data")
                .arg(data)
                .arg("--config")
                .arg(&config)
                .arg("import")
                .arg(&pkg),
        );
        assert!(out.contains("imported: 4 new"), "{out}");
        assert!(out.contains(&format!("from {fingerprint}, sequence 7")), "{out}");
        run_ok(dars().arg("--data").arg(data).arg("import").arg(w.join("local")));
    })
    .await;
    let data_a = server.data.path().to_path_buf();

    // Every file, byte for byte, over real HTTP in identity and gzip.
    for (id, files) in published.iter().chain(&local) {
        assert_served(&server, id, files).await;
    }
    // The origin says who signed, in the API and in `dars status`.
    let (status, _, body) = fetch(&server, "/api/v1/lessons", None).await;
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let origins: BTreeMap<String, String> = list["lessons"]
        .as_array()
        .expect("lessons")
        .iter()
        .map(|l| {
            (
                l["id"].as_str().expect("id").to_owned(),
                l["origin"].as_str().expect("origin").to_owned(),
            )
        })
        .collect();
    assert_eq!(origins.len(), 6, "{origins:?}");
    for id in published.keys() {
        assert_eq!(origins[id], format!("key:{fingerprint}"), "{id}");
    }
    for id in local.keys() {
        assert_eq!(origins[id], "local", "{id}");
    }
    let publisher_line = format!("publisher:      {fingerprint} (sequence 7)");
    let status_a = run_ok(dars().arg("--data").arg(&data_a).arg("status"));
    assert!(status_a.contains(&publisher_line), "{status_a}");

    // Export everything onto a "stick", check it, and import it at another centre.
    let stick = w.join("stick");
    std::fs::create_dir(&stick).expect("stick");
    let out = run_ok(dars().arg("--data").arg(&data_a).arg("export").arg(&stick));
    assert!(out.contains("exported 6 lessons"), "{out}");
    assert!(stick.join("DARS/package.json").is_file());
    let (published_manifest, _) = manifest_of(&pkg);
    let name = published_manifest.file_name().expect("name");
    assert_eq!(
        std::fs::read(stick.join("DARS/manifests").join(name)).expect("exported manifest"),
        std::fs::read(&published_manifest).expect("manifest"),
        "the signed manifest travels byte for byte"
    );
    let out = run_ok(dars().arg("--config").arg(&config).arg("verify").arg(&stick));
    assert!(out.contains("ok: 6 lessons"), "{out}");
    let data_b = w.join("centre-b");
    let out = run_ok(
        dars()
            .arg("--data")
            .arg(&data_b)
            .arg("--config")
            .arg(&config)
            .arg("import")
            .arg(&stick),
    );
    assert!(out.contains("imported: 6 new"), "{out}");
    let (a, b) = (snapshot(&data_a), snapshot(&data_b));
    assert_eq!(
        a.lessons, b.lessons,
        "same lessons, ids, origins, sequences and file hashes"
    );
    assert_eq!(a.publishers, b.publishers);
    for (id, files) in published.iter().chain(&local) {
        assert_eq!(b.lessons[id].files, hashes(files), "{id}");
    }
    assert!(b.lessons["teacher-notes"].origin == "local");
    let status_b = run_ok(dars().arg("--data").arg(&data_b).arg("status"));
    assert!(status_b.contains(&publisher_line), "{status_b}");
    assert_stored(&data_b, &published);
    assert_stored(&data_b, &local);

    // `--lesson ID` exports only that lesson, signed or local.
    for id in ["fizika-8-isiq", "teacher-notes"] {
        let stick = w.join(format!("stick-{id}"));
        std::fs::create_dir(&stick).expect("stick");
        let out = run_ok(
            dars()
                .arg("--data")
                .arg(&data_a)
                .arg("export")
                .arg(&stick)
                .args(["--lesson", id]),
        );
        assert!(out.contains("exported 1 lessons"), "{out}");
        let data_c = w.join(format!("centre-{id}"));
        run_ok(
            dars()
                .arg("--data")
                .arg(&data_c)
                .arg("--config")
                .arg(&config)
                .arg("import")
                .arg(&stick),
        );
        let c = snapshot(&data_c);
        assert_eq!(c.lessons.keys().collect::<Vec<_>>(), vec![id], "only {id} was exported");
        assert_eq!(c.lessons[id], a.lessons[id]);
    }
    server.stop().await;
}

#[test]
fn publishing_is_deterministic_and_importing_the_same_package_again_stores_nothing() {
    let work = tempfile::tempdir().expect("work");
    let w = work.path();
    let publisher = Publisher::new();
    let lessons = dictionary_lessons(&w.join("src"));
    let (one, two) = (w.join("one"), w.join("two"));
    for out in [&one, &two] {
        run_ok(
            dars()
                .arg("publish")
                .arg(w.join("src"))
                .arg("--key")
                .arg(publisher.key_file())
                .arg("--out")
                .arg(out)
                .args(["--seq", "42"]),
        );
    }
    let (blobs_one, blobs_two) = (tree(&one.join("blobs")), tree(&two.join("blobs")));
    assert!(blobs_one.len() >= 60, "{} blob files", blobs_one.len());
    assert_eq!(
        blobs_one.keys().collect::<Vec<_>>(),
        blobs_two.keys().collect::<Vec<_>>(),
        "the same blob file names"
    );
    for (name, bytes) in &blobs_one {
        assert!(bytes == &blobs_two[name], "blobs/{name} differs between two publishes");
    }
    assert_eq!(tree(&one.join("dict")), tree(&two.join("dict")), "the same dictionary");
    let (_, m1) = manifest_of(&one);
    let (_, m2) = manifest_of(&two);
    assert_eq!(m1.lessons, m2.lessons);
    assert_eq!(m1.dictionary, m2.dictionary);

    let data = w.join("data");
    let import = || {
        run_ok(
            dars()
                .arg("--data")
                .arg(&data)
                .arg("--config")
                .arg(publisher.config())
                .arg("import")
                .arg(&one),
        )
    };
    let first = import();
    assert!(first.contains(&format!("imported: {} new", lessons.len())), "{first}");
    let before = snapshot(&data);
    let again = import();
    assert!(
        again.contains(&format!(
            "imported: 0 new, 0 updated, {} unchanged lessons; 0 contents stored",
            lessons.len()
        )),
        "{again}"
    );
    assert_eq!(snapshot(&data), before);
    // The same content published again (another manifest file, same sequence) changes nothing.
    let report = import_pkg(&data, &two, &publisher.trusting()).expect("import the twin");
    assert_eq!(report.unchanged.len(), lessons.len(), "{report:?}");
    assert!(report.added.is_empty() && report.updated.is_empty(), "{report:?}");
    assert_eq!(report.blobs_written, 0, "{report:?}");
    assert_eq!(snapshot(&data), before);
}

#[test]
fn sequence_numbers_must_grow_and_going_back_needs_allow_downgrade() {
    let work = tempfile::tempdir().expect("work");
    let w = work.path();
    let publisher = Publisher::new();
    let v1 = small_lessons(&w.join("v1"), 1);
    let v2 = small_lessons(&w.join("v2"), 2);
    let publish = |src: &str, out: &Path, seq: &str| {
        run(dars()
            .arg("publish")
            .arg(w.join(src))
            .arg("--key")
            .arg(publisher.key_file())
            .arg("--out")
            .arg(out)
            .args(["--seq", seq]))
    };
    let (newer, older) = (w.join("newer"), w.join("older"));
    assert!(publish("v1", &newer, "10").status.success());
    let package_before = tree(&newer);
    for seq in ["10", "9"] {
        let out = publish("v2", &newer, seq);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "publishing sequence {seq} over 10 succeeded");
        assert!(stderr.contains("must grow"), "{stderr}");
        assert!(stderr.contains("--seq 11"), "{stderr}");
        assert!(tree(&newer) == package_before, "a refused publish changed the package");
    }
    assert!(publish("v2", &newer, "11").status.success());
    assert!(publish("v1", &older, "10").status.success());

    let data = w.join("data");
    let import = |pkg: &Path, extra: &[&str]| {
        run(dars()
            .arg("--data")
            .arg(&data)
            .arg("--config")
            .arg(publisher.config())
            .arg("import")
            .arg(pkg)
            .args(extra))
    };
    let out = import(&newer, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_stored(&data, &v2);
    let before = snapshot(&data);

    let out = import(&older, &[]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "a downgrade was accepted");
    assert!(stderr.contains("--allow-downgrade"), "{stderr}");
    assert!(
        stderr.contains("sequence 10") && stderr.contains("sequence 11"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(snapshot(&data), before, "a refused downgrade changed the store");

    let out = import(&older, &["--allow-downgrade"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_stored(&data, &v1);
    let after = snapshot(&data);
    assert!(after.lessons.values().all(|l| l.seq == 10), "{after:?}");
    // And forward again to the newer sequence.
    let out = import(&newer, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_stored(&data, &v2);
}

// ---------------------------------------------------------------------------------------------
// Dictionaries

/// 64 similar lesson pages in 8 lessons, about 1.7 MB of HTML.
fn dictionary_lessons(root: &Path) -> Lessons {
    let mut lessons = Lessons::new();
    let mut total = 0;
    for i in 0..8u64 {
        let language = ["az", "ru", "en"][(i % 3) as usize];
        let title = format!("Mövzu {}", i + 1);
        let mut rng = Rng::new(5000 + i);
        let mut files = Files::new();
        for j in 0..8 {
            let name = if j == 0 {
                "index.html".to_owned()
            } else {
                format!("page-{j:02}.html")
            };
            let len = 20_000 + rng.below(12_000) as usize;
            let page = html_page(&mut rng, language, &title, j, len);
            total += page.len();
            files.insert(name, page);
        }
        files.insert("style.css".to_owned(), stylesheet(i));
        write_lesson_folder(root, &format!("movzu-{i}"), &title, language, 6, &files);
        lessons.insert(format!("movzu-{i}"), files);
    }
    assert!(total >= 1_500_000, "only {total} bytes of HTML");
    lessons
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dictionary_package_round_trips_and_is_never_sent_as_zstd() {
    let work = tempfile::tempdir().expect("work");
    let w = work.path();
    let publisher = Publisher::new();
    let lessons = dictionary_lessons(&w.join("src"));
    let pkg = w.join("pkg");
    let report = publisher.publish(&w.join("src"), &pkg, 1);
    let (size, saving, used) = report.dictionary.expect("a dictionary was tried");
    assert!(used, "the dictionary was not used: {size} bytes, saving {saving}");
    let (_, manifest) = manifest_of(&pkg);
    let dict = manifest.dictionary.clone().expect("the manifest names its dictionary");
    assert!(pkg.join("dict").join(&dict).is_file(), "dict/{dict} is missing");
    let zstd_files = manifest
        .lessons
        .iter()
        .flat_map(|l| &l.files)
        .filter(|f| f.encoding == dars::package::Encoding::Zstd)
        .count();
    assert!(zstd_files >= 64, "{zstd_files} zstd blobs");

    // Without a dictionary: none written, none named.
    let plain = w.join("plain");
    run_ok(
        dars()
            .arg("publish")
            .arg(w.join("src"))
            .arg("--key")
            .arg(publisher.key_file())
            .arg("--out")
            .arg(&plain)
            .args(["--seq", "1", "--no-dictionary"]),
    );
    let (_, plain_manifest) = manifest_of(&plain);
    assert_eq!(plain_manifest.dictionary, None);
    assert!(
        tree(&plain.join("dict")).is_empty(),
        "--no-dictionary wrote a dictionary"
    );

    let server = TestServer::start(|data| {
        import_pkg(data, &pkg, &publisher.trusting()).expect("import");
    })
    .await;
    for (id, files) in &lessons {
        assert_served(&server, id, files).await;
        for (path, bytes) in files {
            let url = format!("/lessons/{id}/{path}");
            // The phone cannot have the publisher's dictionary: never zstd made with it.
            let (status, coding, body) = fetch(&server, &url, Some("zstd")).await;
            assert_eq!(status, 200, "{url}");
            assert_ne!(coding.as_deref(), Some("zstd"), "{url} was sent as dictionary zstd");
            assert!(body == *bytes, "{url}: Accept-Encoding zstd body differs");
            if bytes.len() >= 1024 {
                let (_, coding, body) = fetch(&server, &url, Some("zstd, gzip;q=0.5")).await;
                assert_eq!(coding.as_deref(), Some("gzip"), "{url}");
                assert!(gunzip(&body) == *bytes, "{url}");
            }
        }
    }
    server.stop().await;

    // Without a dictionary, zstd is fine to send and decodes with no dictionary.
    let server = TestServer::start(|data| {
        import_pkg(data, &plain, &publisher.trusting()).expect("import");
    })
    .await;
    let (id, files) = lessons.iter().next().expect("a lesson");
    for (path, bytes) in files.iter().filter(|(p, _)| p.ends_with(".html")) {
        let url = format!("/lessons/{id}/{path}");
        let (_, coding, body) = fetch(&server, &url, Some("zstd")).await;
        assert_eq!(coding.as_deref(), Some("zstd"), "{url}");
        assert!(unzstd(&body) == *bytes, "{url}");
    }
    server.stop().await;
}

/// Files whose names say nothing of their type (Qt's `.index`, a bare `NOTES`) travel and are
/// kept compressed when their bytes are text, and served as they were; binary ones stay raw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_no_known_type_are_compressed_when_their_bytes_are_text() {
    let work = tempfile::tempdir().expect("work");
    let w = work.path();
    let publisher = Publisher::new();
    let mut index = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<INDEX project=\"QtCore\">\n");
    for i in 0..600 {
        index.push_str(&format!(
            "  <class name=\"QObject{i}\" href=\"qobject{i}.html\" status=\"active\" since=\"5.{}\"/>\n",
            i % 15
        ));
    }
    index.push_str("</INDEX>\n");
    let mut files = Files::new();
    files.insert(
        "index.html".to_owned(),
        b"<html><body><p>Qt index</p></body></html>".to_vec(),
    );
    files.insert("qtcore.index".to_owned(), index.into_bytes());
    files.insert(
        "NOTES".to_owned(),
        "Dərsin qeydləri: kəsr, say.\n".repeat(200).into_bytes(),
    );
    let mut binary = pseudo_random_bytes(20_000, 7);
    binary[100] = 0;
    files.insert("model.bin".to_owned(), binary);
    write_lesson_folder(&w.join("src"), "qt-index", "Qt", "en", 9, &files);

    let pkg = w.join("pkg");
    publisher.publish(&w.join("src"), &pkg, 1);
    let (_, manifest) = manifest_of(&pkg);
    let entry = |path: &str| {
        manifest.lessons[0]
            .files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("{path} in the manifest"))
            .clone()
    };
    for path in ["qtcore.index", "NOTES"] {
        let file = entry(path);
        assert_eq!(file.media_type, "application/octet-stream", "{path}");
        assert_eq!(file.encoding, dars::package::Encoding::Zstd, "{path} travels raw");
        assert!(
            file.stored_size * 4 < file.size,
            "{path}: {} of {} bytes",
            file.stored_size,
            file.size
        );
    }
    assert_eq!(entry("model.bin").encoding, dars::package::Encoding::Raw);

    // Imported from the package and from the folder: both keep the text compressed, and a
    // phone gets every byte back.
    let server = TestServer::start(|data| {
        import_pkg(data, &pkg, &publisher.trusting()).expect("import");
    })
    .await;
    assert_served(&server, "qt-index", &files).await;
    server.stop().await;
    let folder = w.join("folder-store");
    crate::common::import(&folder, &w.join("src"));
    let conn = rusqlite::Connection::open(folder.join("dars.sqlite")).expect("store");
    for (path, storage) in [("qtcore.index", 1), ("NOTES", 1), ("model.bin", 0)] {
        let hash = Hash::of(&files[path]);
        let stored: i64 = conn
            .query_row("SELECT storage FROM blobs WHERE hash = ?1", [&hash.0[..]], |r| r.get(0))
            .expect("blob");
        assert_eq!(stored, storage, "{path} (1: compressed text, 0: raw)");
    }
}

// ---------------------------------------------------------------------------------------------
// A real FAT32 stick (through FUSE: fusefat)

/// A FAT32 image mounted with fusefat in the foreground (a child we own). Unmounted on drop.
struct FatMount {
    mnt: PathBuf,
    child: Option<Child>,
}

fn is_mounted(dir: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let dir = dir.to_string_lossy();
    mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(&*dir))
}

fn fusermount() -> &'static str {
    if have("fusermount3") {
        "fusermount3"
    } else {
        "fusermount"
    }
}

impl FatMount {
    fn mount(img: &Path, mnt: &Path) -> Result<FatMount, String> {
        std::fs::create_dir_all(mnt).map_err(|e| format!("mkdir {}: {e}", mnt.display()))?;
        // fusefat logs every operation: into a file, never a pipe nobody reads (it would block).
        let log_path = img.with_extension("log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("fusefat log: {e}"))?;
        let mut child = Command::new("fusefat")
            .args(["-f", "-o", "rw+"])
            .arg(img)
            .arg(mnt)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run fusefat: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if is_mounted(mnt) {
                return Ok(FatMount {
                    mnt: mnt.to_path_buf(),
                    child: Some(child),
                });
            }
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("fusefat exited ({status}) without mounting: {}", log.trim()));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("fusefat did not mount within 20 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Unmounts and waits for fusefat to finish writing the image.
    fn unmount(mut self) {
        assert!(self.release(), "unmounting {} failed", self.mnt.display());
    }

    fn release(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let ok = Command::new(fusermount())
            .arg("-u")
            .arg(&self.mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new(fusermount()).arg("-uz").arg(&self.mnt).status();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        ok
    }
}

impl Drop for FatMount {
    fn drop(&mut self) {
        self.release();
    }
}

/// A fresh 200 MB FAT32 image, or why one cannot be made here.
fn fat32_image(dir: &Path) -> Result<PathBuf, String> {
    for tool in ["mkfs.vfat", "fusefat"] {
        if !have(tool) {
            return Err(format!("{tool} is not installed (apt-get install dosfstools fusefat)"));
        }
    }
    if !have("fusermount") && !have("fusermount3") {
        return Err("fusermount is not installed (apt-get install fuse3 or fuse)".to_owned());
    }
    if !Path::new("/dev/fuse").exists() {
        return Err("/dev/fuse does not exist".to_owned());
    }
    let img = dir.join("stick.img");
    std::fs::File::create(&img)
        .and_then(|f| f.set_len(200 * 1024 * 1024))
        .map_err(|e| format!("cannot make the image: {e}"))?;
    let out = Command::new("mkfs.vfat")
        .args(["-F", "32", "-n", "DARSSTICK"])
        .arg(&img)
        .output()
        .map_err(|e| format!("cannot run mkfs.vfat: {e}"))?;
    if !out.status.success() {
        return Err(format!("mkfs.vfat failed: {}", text(&out.stderr)));
    }
    Ok(img)
}

#[test]
fn a_package_on_a_fat32_stick_survives_unmounting_and_imports_elsewhere() {
    let work = tempfile::tempdir().expect("work");
    let w = work.path();
    let img = match fat32_image(w) {
        Ok(img) => img,
        Err(why) => return unavailable(&why),
    };
    let mnt = w.join("mnt");
    let stick = match FatMount::mount(&img, &mnt) {
        Ok(stick) => stick,
        Err(why) => return unavailable(&format!("cannot mount a FAT32 image: {why}")),
    };

    let publisher = Publisher::new();
    let published = small_lessons(&w.join("src"), 1);
    let local = local_lessons(&w.join("local"));
    let pkg = w.join("pkg");
    publisher.publish(&w.join("src"), &pkg, 3);
    let data_a = w.join("centre-a");
    import_pkg(&data_a, &pkg, &publisher.trusting()).expect("import");
    crate::common::import(&data_a, &w.join("local"));

    // Export onto the stick with the CLI, as a technician would.
    let out = run_ok(dars().arg("--data").arg(&data_a).arg("export").arg(&mnt));
    assert!(out.contains("exported 6 lessons"), "{out}");

    // A second package, published straight onto the stick with 100 KB parts: a 1 MB film
    // travels as numbered part files.
    let parts_src = w.join("parts-src");
    let film = media("mp4", 1_000_000, 77);
    let mut files = Files::new();
    files.insert(
        "index.html".to_owned(),
        html_page(&mut Rng::new(78), "az", "Film", 0, 20_000),
    );
    files.insert("media/film.mp4".to_owned(), film.clone());
    write_lesson_folder(&parts_src, "film-dersi", "Film", "az", 9, &files);
    let parts_pkg = mnt.join("parts");
    let mut opts = publisher.options(4);
    opts.part_size = 100_000;
    publish_with(&parts_src, &parts_pkg, &opts);
    stick.unmount();

    let stick = FatMount::mount(&img, &mnt).expect("remount the FAT32 image");
    assert!(
        mnt.join("DARS/package.json").is_file(),
        "the export is not on the stick"
    );
    let film_hex = Hash::of(&film).to_hex();
    let film_dir = mnt.join("parts/blobs").join(&film_hex[..2]);
    for n in 1..=10 {
        let part = film_dir.join(format!("{film_hex}.{n}"));
        let len = std::fs::metadata(&part)
            .unwrap_or_else(|e| panic!("{}: {e}", part.display()))
            .len();
        assert_eq!(len, 100_000, "part {n}");
    }
    assert!(!film_dir.join(&film_hex).exists(), "the film was also written whole");
    assert!(!film_dir.join(format!("{film_hex}.11")).exists());

    let out = run_ok(dars().arg("--config").arg(publisher.config()).arg("verify").arg(&mnt));
    assert!(out.contains("ok: 6 lessons"), "{out}");
    let data_b = w.join("centre-b");
    let out = run_ok(
        dars()
            .arg("--data")
            .arg(&data_b)
            .arg("--config")
            .arg(publisher.config())
            .arg("import")
            .arg(&mnt),
    );
    assert!(out.contains("imported: 6 new"), "{out}");
    assert_eq!(snapshot(&data_b).lessons, snapshot(&data_a).lessons);
    assert_stored(&data_b, &published);
    assert_stored(&data_b, &local);

    let out = run_ok(
        dars()
            .arg("--config")
            .arg(publisher.config())
            .arg("verify")
            .arg(mnt.join("parts")),
    );
    assert!(out.contains("ok: 1 lessons"), "{out}");
    let data_c = w.join("centre-c");
    run_ok(
        dars()
            .arg("--data")
            .arg(&data_c)
            .arg("--config")
            .arg(publisher.config())
            .arg("import")
            .arg(mnt.join("parts")),
    );
    let mut expected = Lessons::new();
    expected.insert("film-dersi".to_owned(), files);
    assert_stored(&data_c, &expected);
    stick.unmount();
}

// ---------------------------------------------------------------------------------------------
// Tampering

/// One needed (not yet stored) file of a package: its lesson, path and blob file.
#[derive(Debug, Clone)]
struct BlobRef {
    lesson: String,
    path: String,
    file: PathBuf,
}

/// The files of `pkg` whose content is not in `have`, in import order, with their blob files.
fn needed_blobs(pkg: &Path, have: &BTreeSet<Hash>) -> Vec<BlobRef> {
    let (_, manifest) = manifest_of(pkg);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for lesson in &manifest.lessons {
        for file in &lesson.files {
            let hash = file.hash().expect("hash");
            if have.contains(&hash) || !seen.insert(hash) {
                continue;
            }
            out.push(BlobRef {
                lesson: lesson.id.clone(),
                path: file.path.clone(),
                file: pkg.join(dars::package::blob_path(hash, None)),
            });
        }
    }
    out
}

/// A way to damage a copy of a package, and the words its refusal must contain.
struct Tamper<'a> {
    what: &'static str,
    damage: Damage<'a>,
}

/// Damages the package copy it is given; returns the words the refusal must contain.
type Damage<'a> = Box<dyn Fn(&Path) -> Vec<String> + 'a>;

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x20;
    std::fs::write(path, bytes).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_packages_are_refused_with_their_own_message_and_change_nothing() {
    let work = tempfile::tempdir().expect("work");
    let w = work.path();
    let publisher = Publisher::new();
    let stranger = Publisher::new();
    let v1 = small_lessons(&w.join("v1"), 1);
    small_lessons(&w.join("v2"), 2);
    let (old, new) = (w.join("old"), w.join("new"));
    publisher.publish(&w.join("v1"), &old, 1);
    publisher.publish(&w.join("v2"), &new, 2);
    let foreign = w.join("foreign");
    stranger.publish(&w.join("v2"), &foreign, 2);

    let server = TestServer::start(|data| {
        import_pkg(data, &old, &publisher.trusting()).expect("import v1");
    })
    .await;
    let data = server.data.path().to_path_buf();
    let before = snapshot(&data);
    assert_eq!(before.lessons.len(), 4);

    let (_, old_manifest) = manifest_of(&old);
    let have: BTreeSet<Hash> = old_manifest
        .lessons
        .iter()
        .flat_map(|l| &l.files)
        .map(|f| f.hash().expect("hash"))
        .collect();
    let needed = needed_blobs(&new, &have);
    let text_blob = needed
        .iter()
        .find(|b| b.path.ends_with(".html"))
        .expect("a changed page")
        .clone();
    let film = needed
        .iter()
        .find(|b| b.path.ends_with(".mp4"))
        .expect("a changed film")
        .clone();
    let other_text = needed
        .iter()
        .find(|b| b.path.ends_with(".html") && b.lesson != text_blob.lesson)
        .expect("a second changed page")
        .clone();
    let rel = |b: &BlobRef, root: &Path| root.join(b.file.strip_prefix(&new).expect("inside"));
    let names = |b: &BlobRef| vec![format!("lesson {}", b.lesson), b.path.clone()];
    let stranger_key = stranger.public.to_text();
    let stranger_fp = stranger.fingerprint();

    let sig_words = || {
        vec![
            "signature".to_owned(),
            "does not match".to_owned(),
            "altered".to_owned(),
        ]
    };
    let cases: Vec<Tamper> = vec![
        Tamper {
            what: "a byte of the manifest",
            damage: Box::new(move |pkg| {
                let (path, _) = manifest_of(pkg);
                let text = std::fs::read_to_string(&path).expect("manifest");
                let at = text.find("\"id\": \"").expect("a lesson id in the root") + 8;
                flip_byte(&path, at);
                sig_words()
            }),
        },
        Tamper {
            what: "a garbage signature file",
            damage: Box::new(move |pkg| {
                let (path, _) = manifest_of(pkg);
                std::fs::write(path.with_extension("sig"), "this is not a signature\n").expect("sig");
                sig_words()
            }),
        },
        Tamper {
            what: "a well-formed signature of other bytes",
            damage: Box::new(move |pkg| {
                let (path, _) = manifest_of(pkg);
                let sig = std::fs::read_to_string(path.with_extension("sig")).expect("sig");
                let mut bytes = sig.into_bytes();
                bytes[10] = if bytes[10] == b'0' { b'1' } else { b'0' };
                std::fs::write(path.with_extension("sig"), bytes).expect("sig");
                sig_words()
            }),
        },
        Tamper {
            what: "a package signed by an unknown key",
            damage: Box::new(move |pkg| {
                std::fs::remove_dir_all(pkg).expect("clear");
                copy_tree(&w_foreign(pkg), pkg);
                vec![
                    "does not trust".to_owned(),
                    stranger_fp.clone(),
                    format!("trusted_keys = [\"{stranger_key}\"]"),
                ]
            }),
        },
        Tamper {
            what: "a byte of a text blob",
            damage: {
                let b = text_blob.clone();
                Box::new(move |pkg| {
                    let path = rel(&b, pkg);
                    let len = std::fs::metadata(&path).expect("blob").len() as usize;
                    flip_byte(&path, len / 2);
                    let mut words = names(&b);
                    words.push("damaged".to_owned());
                    words
                })
            },
        },
        Tamper {
            what: "a byte of a film blob",
            damage: {
                let b = film.clone();
                Box::new(move |pkg| {
                    flip_byte(&rel(&b, pkg), 700_000);
                    let mut words = names(&b);
                    words.push("damaged".to_owned());
                    words
                })
            },
        },
        Tamper {
            what: "two blob files swapped",
            damage: {
                let (a, b) = (text_blob.clone(), other_text.clone());
                Box::new(move |pkg| {
                    let (pa, pb) = (rel(&a, pkg), rel(&b, pkg));
                    let tmp = pkg.join("swap.tmp");
                    std::fs::rename(&pa, &tmp).expect("swap");
                    std::fs::rename(&pb, &pa).expect("swap");
                    std::fs::rename(&tmp, &pb).expect("swap");
                    // The first of the two in import order is the one found out.
                    let mut words = names(&a);
                    words.extend(["damaged".to_owned(), "Copy the package again".to_owned()]);
                    words
                })
            },
        },
        Tamper {
            what: "a missing blob",
            damage: {
                let b = film.clone();
                Box::new(move |pkg| {
                    std::fs::remove_file(rel(&b, pkg)).expect("remove");
                    let mut words = names(&b);
                    words.push("missing".to_owned());
                    words
                })
            },
        },
        Tamper {
            what: "a truncated blob",
            damage: {
                let b = film.clone();
                Box::new(move |pkg| {
                    let path = rel(&b, pkg);
                    let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
                    file.set_len(500_000).expect("truncate");
                    let mut words = names(&b);
                    words.extend(["damaged".to_owned(), "cut short".to_owned()]);
                    words
                })
            },
        },
        Tamper {
            what: "a truncated text blob",
            damage: {
                let b = text_blob.clone();
                Box::new(move |pkg| {
                    let path = rel(&b, pkg);
                    let len = std::fs::metadata(&path).expect("blob").len();
                    let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
                    file.set_len(len / 2).expect("truncate");
                    let mut words = names(&b);
                    words.push("damaged".to_owned());
                    words
                })
            },
        },
        Tamper {
            what: "a byte of a changed lesson's part",
            damage: {
                let lesson = text_blob.lesson.clone();
                Box::new(move |pkg| {
                    let path = part_files(pkg)[&lesson].clone();
                    let len = std::fs::metadata(&path).expect("part").len() as usize;
                    flip_byte(&path, len / 2);
                    vec![
                        format!("lesson {lesson}"),
                        "description".to_owned(),
                        "damaged".to_owned(),
                    ]
                })
            },
        },
        Tamper {
            what: "a missing lesson part",
            damage: {
                let lesson = text_blob.lesson.clone();
                Box::new(move |pkg| {
                    std::fs::remove_file(&part_files(pkg)[&lesson]).expect("remove");
                    vec![
                        format!("lesson {lesson}"),
                        "description".to_owned(),
                        "missing".to_owned(),
                    ]
                })
            },
        },
        Tamper {
            what: "two lesson parts swapped",
            damage: {
                let (a, b) = (text_blob.lesson.clone(), other_text.lesson.clone());
                Box::new(move |pkg| {
                    let parts = part_files(pkg);
                    let (pa, pb) = (parts[&a].clone(), parts[&b].clone());
                    let tmp = pkg.join("swap.tmp");
                    std::fs::rename(&pa, &tmp).expect("swap");
                    std::fs::rename(&pb, &pa).expect("swap");
                    std::fs::rename(&tmp, &pb).expect("swap");
                    // The first of the two in the root's order is the one found out.
                    vec![
                        format!("lesson {}", a.clone().min(b.clone())),
                        "description".to_owned(),
                        "altered or swapped".to_owned(),
                    ]
                })
            },
        },
    ];
    /// The foreign package lives next to the copies.
    fn w_foreign(pkg: &Path) -> PathBuf {
        pkg.parent().expect("parent").parent().expect("work").join("foreign")
    }

    for (n, case) in cases.iter().enumerate() {
        let pkg = w.join(format!("tampered/{n}"));
        copy_tree(&new, &pkg);
        let words = (case.damage)(&pkg);
        let check = |all: &str, how: &str| {
            for word in &words {
                assert!(
                    all.contains(word.as_str()),
                    "{}: {how} does not say {word:?}:\n{all}",
                    case.what
                );
            }
        };
        // `dars verify PKG` refuses it with the same words ...
        let all = run_fail(dars().arg("--config").arg(publisher.config()).arg("verify").arg(&pkg));
        check(&all, "verify");
        // ... and so does the import, which changes nothing.
        let all = run_fail(
            dars()
                .arg("--data")
                .arg(&data)
                .arg("--config")
                .arg(publisher.config())
                .arg("import")
                .arg(&pkg),
        );
        check(&all, "import");
        let error = import_pkg(&data, &pkg, &publisher.trusting())
            .expect_err(case.what)
            .to_string();
        check(&error, "the library's error");
        assert_eq!(snapshot(&data), before, "{}: the store changed", case.what);
        for (id, files) in &v1 {
            assert_served(&server, id, files).await;
        }
        assert_stored(&data, &v1);
    }
    let out = run_ok(dars().arg("--data").arg(&data).arg("verify"));
    assert!(out.starts_with("ok"), "{out}");
    // The genuine package still imports.
    let report = import_pkg(&data, &new, &publisher.trusting()).expect("the untouched package");
    assert_eq!(report.updated.len(), 4, "{report:?}");
    assert!(snapshot(&data).lessons.values().all(|l| l.seq == 2));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Power cuts

/// Which version (1 or 2) every lesson of the store shows; panics on a lesson that is neither
/// or a store that mixes versions (a package lands in one transaction).
fn store_version(data: &Path, v1: &Lessons, v2: &Lessons, when: &str) -> u64 {
    let out = run(dars().arg("--data").arg(data).arg("verify"));
    assert!(
        out.status.success() && text(&out.stdout).starts_with("ok"),
        "verify {when}:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let lib = Library::open(data).unwrap_or_else(|e| panic!("the store does not open {when}: {e}"));
    let shown = lessons_of(&lib);
    assert_eq!(shown.len(), v1.len(), "{when}: lessons {:?}", shown.keys());
    let mut versions = BTreeSet::new();
    for (id, state) in &shown {
        let version = if state.files == hashes(&v1[id]) {
            1
        } else if state.files == hashes(&v2[id]) {
            2
        } else {
            panic!("{when}: lesson {id} is neither version 1 nor version 2: {state:#?}")
        };
        // Its entry page really is there, with the bytes of that version.
        let hit = lib.find_file(id, "index.html").expect("entry");
        let bytes = lib.read_raw(&hit.blob).expect("read entry");
        let expected = if version == 1 { &v1[id] } else { &v2[id] };
        assert!(bytes == expected["index.html"], "{when}: {id}/index.html bytes");
        versions.insert(version);
    }
    assert_eq!(versions.len(), 1, "{when}: the store mixes versions {versions:?}");
    versions.into_iter().next().expect("a version")
}

fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("store dir");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(to.join(format!("{}{suffix}", dars::store::DB_FILE)));
    }
    for suffix in ["", "-wal"] {
        let name = format!("{}{suffix}", dars::store::DB_FILE);
        if from.join(&name).exists() {
            std::fs::copy(from.join(&name), to.join(&name)).expect("copy store");
        }
    }
}

#[test]
fn a_big_import_indexes_each_lesson_with_the_text_it_would_read_alone() {
    // From 16 lessons on, the import extracts their search text on other threads while its
    // transaction inserts the lessons; it must be exactly what a lesson indexed on its own gets.
    let work = tempfile::tempdir().expect("work");
    let w = work.path();
    let publisher = Publisher::new();
    let spec = Bulk {
        count: 20,
        pages: 4,
        page_len: 3_000,
        image_len: 2_000,
        video_every: 1000,
        video_len: 1_000,
    };
    bulk_lessons(&w.join("src"), &spec, 1);
    publisher.publish(&w.join("src"), &w.join("pkg"), 1);
    let data = w.join("data");
    let report = import_pkg(&data, &w.join("pkg"), &publisher.trusting()).expect("import");
    assert_eq!(report.added.len(), 20);
    let conn = rusqlite::Connection::open(data.join(dars::store::DB_FILE)).expect("open store");
    let found = dars::store::search_index(&conn, "\"ders\"*", None, 100).expect("search");
    assert_eq!(found.len(), 20, "every lesson is found by its title");
    for hit in found {
        let id = &hit.lesson.meta.id;
        let files = dars::store::files_of(&conn, id).expect("files");
        let alone = dars::store::lesson_text(&conn, &hit.lesson.meta.entry, &files);
        assert!(alone.len() > 1000, "{id}: its pages have text");
        assert_eq!(hit.body, alone, "{id}: the indexed text is the lesson's own");
    }
}

#[test]
fn imports_killed_at_random_points_leave_all_old_or_all_new() {
    let started = Instant::now();
    let work = tempfile::tempdir().expect("work");
    let w = work.path();
    let publisher = Publisher::new();
    let spec = Bulk {
        count: 40,
        pages: 8,
        page_len: 30_000,
        image_len: 300_000,
        video_every: 4,
        video_len: 5_000_000,
    };
    let v1 = bulk_lessons(&w.join("v1"), &spec, 1);
    let v2 = bulk_lessons(&w.join("v2"), &spec, 2);
    for (id, files) in &v1 {
        assert_ne!(hashes(files), hashes(&v2[id]), "lesson {id} must change");
    }
    let fast = |seq| {
        let mut opts = publisher.options(seq);
        opts.zstd_level = 3;
        opts.dictionary = DictionaryChoice::Never;
        opts
    };
    let (pkg1, pkg2) = (w.join("pkg1"), w.join("pkg2"));
    let r1 = publish_with(&w.join("v1"), &pkg1, &fast(1));
    let r2 = publish_with(&w.join("v2"), &pkg2, &fast(2));
    assert!(
        r2.package_bytes > 60_000_000,
        "the package is only {} bytes",
        r2.package_bytes
    );
    let generated = started.elapsed();

    let import = |data: &Path| {
        let mut cmd = dars();
        cmd.arg("--data")
            .arg(data)
            .arg("--config")
            .arg(publisher.config())
            .arg("import")
            .arg(&pkg2);
        cmd
    };
    let base = w.join("base");
    run_ok(
        dars()
            .arg("--data")
            .arg(&base)
            .arg("--config")
            .arg(publisher.config())
            .arg("import")
            .arg(&pkg1),
    );
    assert_eq!(store_version(&base, &v1, &v2, "after the first import"), 1);
    let base_blobs = blob_count(&base);

    // A timed run on a copy tells how long a whole update takes.
    let timed = w.join("timed");
    copy_store(&base, &timed);
    let t0 = Instant::now();
    run_ok(&mut import(&timed));
    let full = t0.elapsed();
    assert_eq!(store_version(&timed, &v1, &v2, "after a whole update"), 2);

    let data = w.join("data");
    copy_store(&base, &data);
    let mut rng = Rng::new(20_240_229);
    let (mut killed_old, mut killed_new, mut finished, mut partial) = (0, 0, 0, 0);
    let runs = 24;
    let mut version = 1;
    for run_no in 0..runs {
        // Runs come in chains of three on the same store (an import resuming after a kill);
        // then, or once the update has landed, the store goes back to version 1.
        if run_no % 3 == 0 || version == 2 {
            copy_store(&base, &data);
        }
        let delay = Duration::from_micros(rng.below(full.as_micros() as u64 * 11 / 10));
        let mut child = import(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(delay);
        let killed = child.try_wait().expect("try_wait").is_none();
        if killed {
            child.kill().expect("SIGKILL");
        }
        let status = child.wait().expect("reap");
        let when = format!("run {run_no}, {} after the start ({status})", humanize(delay));
        version = store_version(&data, &v1, &v2, &when);
        match (killed, version) {
            (true, 1) => {
                killed_old += 1;
                if blob_count(&data) > base_blobs {
                    partial += 1;
                }
            }
            (true, _) => killed_new += 1,
            (false, _) => {
                assert!(status.success(), "{when}: the import failed");
                assert_eq!(version, 2, "{when}: finished but not updated");
                finished += 1;
            }
        }
    }
    eprintln!(
        "power cuts: full update {:.2} s; {runs} runs: {killed_old} killed before the commit ({partial} with blobs \
         stored), {killed_new} killed after it, {finished} finished; generating {:.1} s",
        full.as_secs_f64(),
        generated.as_secs_f64()
    );
    // The delays are scaled to a timed run, but a loaded machine shifts them; five is still
    // enough to know the kills land inside the import.
    assert!(killed_old >= 5, "too few kills landed during the import ({killed_old})");

    // Kills aimed between the first batch of blobs and the commit: the blobs are stored,
    // the lessons must still be all old.
    for aimed in 0..2 {
        copy_store(&base, &data);
        let mut child = import(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut killed = false;
        while child.try_wait().expect("try_wait").is_none() {
            assert!(Instant::now() < deadline, "the import did not finish");
            let conn = rusqlite::Connection::open_with_flags(
                data.join(dars::store::DB_FILE),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .expect("watch the store");
            let blobs: i64 = conn
                .query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
                .unwrap_or(base_blobs);
            if blobs > base_blobs {
                killed = child.kill().is_ok();
                break;
            }
        }
        let status = child.wait().expect("reap");
        let when = format!("aimed run {aimed}, killed {killed} once blobs were stored ({status})");
        if store_version(&data, &v1, &v2, &when) == 1 && blob_count(&data) > base_blobs {
            partial += 1;
        }
    }
    eprintln!("power cuts: {partial} kills in all left stored blobs and the old lessons");
    assert!(
        partial >= 1,
        "no kill landed after blobs were stored and before the commit ({partial})"
    );

    // Kills aimed at the commit itself: the moment any lesson shows its new version, all of
    // them must (one transaction), so a kill right then never leaves a mix.
    let v1_digests = lesson_digests(&base);
    for aimed in 0..4 {
        copy_store(&base, &data);
        let watch = rusqlite::Connection::open_with_flags(
            data.join(dars::store::DB_FILE),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("watch the store");
        let mut child = import(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut killed = false;
        while child.try_wait().expect("try_wait").is_none() {
            assert!(Instant::now() < deadline, "the import did not finish");
            let now = read_digests(&watch);
            if now.iter().any(|(id, digest)| v1_digests.get(id) != Some(digest)) {
                killed = child.kill().is_ok();
                break;
            }
        }
        let status = child.wait().expect("reap");
        drop(watch);
        let when = format!("aimed run {aimed}, killed {killed} as the first lesson changed ({status})");
        assert_eq!(store_version(&data, &v1, &v2, &when), 2, "{when}");
    }

    // Finally an import runs to the end and everything is version 2.
    run_ok(&mut import(&data));
    assert_eq!(store_version(&data, &v1, &v2, "after the last import"), 2);
    assert_stored(&data, &v2);
    let _ = r1;
    eprintln!("power cuts took {:.1} s in all", started.elapsed().as_secs_f64());
}

/// Each lesson's digest (what changes with every new version), as a reader sees it.
fn read_digests(conn: &rusqlite::Connection) -> BTreeMap<String, Vec<u8>> {
    let Ok(mut stmt) = conn.prepare_cached("SELECT id, digest FROM lessons") else {
        return BTreeMap::new();
    };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .unwrap_or_default()
}

fn lesson_digests(data: &Path) -> BTreeMap<String, Vec<u8>> {
    let conn = rusqlite::Connection::open_with_flags(
        data.join(dars::store::DB_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open store");
    let digests = read_digests(&conn);
    assert!(!digests.is_empty(), "no lessons in {}", data.display());
    digests
}

fn humanize(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------------------------
// A full disk

/// A tmpfs mounted on a folder; unmounted when dropped (even when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, megabytes: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}M"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(dir.to_path_buf()))
        } else {
            Err(format!("mount -t tmpfs failed: {}", text(&out.stderr).trim()))
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Fills the file system of `dir` with `filler` until a write fails, then frees `free` bytes.
fn fill_disk(filler: &Path, free: u64) {
    let mut file = std::fs::File::create(filler).expect("filler");
    let chunk = vec![0x5a; 256 * 1024];
    let mut len = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n as u64,
        }
    }
    let _ = file.sync_all();
    file.set_len(len.saturating_sub(free)).expect("free some space");
}

#[test]
fn an_import_onto_a_full_disk_fails_cleanly_and_the_store_stays_usable() {
    let work = tempfile::tempdir().expect("work");
    let w = work.path();
    let disk = w.join("disk");
    let _mounted = match Tmpfs::mount(&disk, 64) {
        Ok(m) => m,
        Err(why) => return unavailable(&format!("cannot mount a small tmpfs: {why}")),
    };
    let data = disk.join("data");
    let publisher = Publisher::new();
    let v1 = small_lessons(&w.join("v1"), 1);
    let v2 = small_lessons(&w.join("v2"), 2);
    let big = bulk_lessons(
        &w.join("big"),
        &Bulk {
            count: 6,
            pages: 4,
            page_len: 20_000,
            image_len: 100_000,
            video_every: 2,
            video_len: 6_000_000,
        },
        1,
    );
    let (pkg1, pkg2, pkg_big) = (w.join("pkg1"), w.join("pkg2"), w.join("pkg-big"));
    publisher.publish(&w.join("v1"), &pkg1, 1);
    publisher.publish(&w.join("v2"), &pkg2, 2);
    publisher.publish(&w.join("big"), &pkg_big, 3);
    let import = |pkg: &Path| {
        run(dars()
            .arg("--data")
            .arg(&data)
            .arg("--config")
            .arg(publisher.config())
            .arg("import")
            .arg(pkg))
    };
    let out = import(&pkg1);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = snapshot(&data);

    // Leave 10 MB free: the 18 MB of films cannot fit.
    let filler = disk.join("filler");
    fill_disk(&filler, 10 * 1024 * 1024);
    let out = import(&pkg_big);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "an import onto a full disk succeeded");
    eprintln!("full disk: {}", stderr.trim());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("disk") && stderr.contains("full"), "{stderr}");
    assert!(
        stderr.contains("free some space"),
        "the technician is not told what to do about the full disk:\n{stderr}"
    );
    assert!(
        !stderr.contains("database error"),
        "a raw SQLite error instead of a clear message:\n{stderr}"
    );
    assert_eq!(
        snapshot(&data).lessons,
        before.lessons,
        "the failed import changed the lessons"
    );
    let out = run_ok(dars().arg("--data").arg(&data).arg("verify"));
    assert!(out.starts_with("ok"), "{out}");
    assert_stored(&data, &v1);

    // A small update still fits, even before space is freed.
    let out = import(&pkg2);
    assert!(
        out.status.success(),
        "a small import after a full disk: {}",
        text(&out.stderr)
    );
    assert_stored(&data, &v2);
    // With space freed, the big package goes in too.
    std::fs::remove_file(&filler).expect("free the disk");
    let out = import(&pkg_big);
    assert!(
        out.status.success(),
        "the big import after freeing space: {}",
        text(&out.stderr)
    );
    assert_stored(&data, &big);
    assert_stored(&data, &v2);
    let out = run_ok(dars().arg("--data").arg(&data).arg("verify"));
    assert!(out.starts_with("ok"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// A stick pulled out

/// Imports `stick` while `pull` runs once the import has stored a few files; returns the
/// import's result and whether `pull` ran before the import ended.
fn import_while(
    data: &Path,
    stick: &Path,
    opts: &ImportPackageOptions,
    pull: impl FnOnce() + Send,
) -> (Result<PackageReport, ServiceError>, bool) {
    let lib = Library::open(data).expect("open store");
    let progress = Progress::new();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let puller = scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if done.load(Ordering::Acquire) || Instant::now() > deadline {
                    return false;
                }
                if progress.snapshot().done_items >= 3 {
                    pull();
                    return true;
                }
                std::thread::yield_now();
            }
        });
        let result = lib.import_package(stick, opts, &progress);
        done.store(true, Ordering::Release);
        let pulled = puller.join().expect("puller");
        (result, pulled)
    })
}

#[test]
fn a_stick_pulled_out_during_an_import_changes_nothing() {
    let work = tempfile::tempdir().expect("work");
    let w = work.path();
    let publisher = Publisher::new();
    // Large enough for several of the import's parallel read groups (16 MB each), so the
    // stick goes away between groups, with more still to read, and for more than one 32 MB
    // batch, so the import's background checkpoints are running when it fails.
    let spec = Bulk {
        count: 70,
        pages: 6,
        page_len: 25_000,
        image_len: 500_000,
        video_every: 100,
        video_len: 1_000_000,
    };
    let v1 = bulk_lessons(&w.join("v1"), &spec, 1);
    let v2 = bulk_lessons(&w.join("v2"), &spec, 2);
    let mut opts = publisher.options(1);
    opts.zstd_level = 3;
    publish_with(&w.join("v1"), &w.join("pkg1"), &opts);
    let stick = w.join("stick");
    let mut opts = publisher.options(2);
    opts.zstd_level = 3;
    publish_with(&w.join("v2"), &stick.join("DARS"), &opts);
    let pristine = w.join("pristine");
    copy_tree(&stick, &pristine);

    let data = w.join("data");
    import_pkg(&data, &w.join("pkg1"), &publisher.trusting()).expect("import v1");
    let before = snapshot(&data);

    // 1. The whole stick goes away.
    let away = w.join("stick-away");
    let (result, pulled) = import_while(&data, &stick, &publisher.trusting(), || {
        std::fs::rename(&stick, &away).expect("pull the stick");
    });
    assert!(pulled, "the import ended before the stick was pulled");
    let error = result.expect_err("an import from a pulled stick succeeded").to_string();
    assert!(error.contains("USB stick removed?"), "{error}");
    assert!(error.contains("nothing was changed"), "{error}");
    assert_eq!(snapshot(&data), before, "a pulled stick changed the store");
    assert_stored(&data, &v1);

    // 2. A file the import has not read yet becomes unreadable (a bad sector, a stick half out).
    std::fs::rename(&away, &stick).expect("plug the stick in again");
    let (_, old) = manifest_of(&w.join("pkg1"));
    let have: BTreeSet<Hash> = old
        .lessons
        .iter()
        .flat_map(|l| &l.files)
        .map(|f| f.hash().expect("hash"))
        .collect();
    let last = needed_blobs(&stick.join("DARS"), &have).pop().expect("a needed blob");
    let hidden = w.join("hidden-blob");
    let (result, pulled) = import_while(&data, &stick, &publisher.trusting(), || {
        std::fs::rename(&last.file, &hidden).expect("move the blob");
        std::fs::create_dir(&last.file).expect("a folder in its place");
    });
    assert!(pulled, "the import ended before the blob became unreadable");
    let error = result
        .expect_err("an import with an unreadable blob succeeded")
        .to_string();
    assert!(error.contains("cannot read"), "{error}");
    assert!(
        error.contains(&last.file.file_name().expect("name").to_string_lossy().into_owned()),
        "{error}"
    );
    assert!(error.contains("nothing was changed"), "{error}");
    assert_eq!(snapshot(&data), before, "an unreadable blob changed the store");

    // A copy of the stick as it was imports completely; v1 came days ago, so the contents
    // only it used are removed, and the technician is told so.
    let conn = rusqlite::Connection::open(data.join(dars::store::DB_FILE)).expect("open store");
    conn.execute("UPDATE blobs SET added_at = added_at - 2 * 86400", [])
        .expect("age");
    drop(conn);
    let out = run_ok(
        dars()
            .arg("--data")
            .arg(&data)
            .arg("--config")
            .arg(publisher.config())
            .arg("import")
            .arg(&pristine),
    );
    assert!(out.contains(&format!("{} updated", v2.len())), "{out}");
    assert!(out.contains("no longer used removed"), "{out}");
    assert_stored(&data, &v2);
    let out = run_ok(dars().arg("--data").arg(&data).arg("verify"));
    assert!(out.starts_with("ok"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// Keys and checking

#[test]
fn keygen_writes_a_private_secret_and_never_overwrites_it() {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().expect("work");
    let key = work.path().join("ministry.key");
    let public_file = work.path().join("ministry.key.pub");
    let out = run(dars().arg("keygen").arg("--out").arg(&key));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout).trim().to_owned();
    let public = PublicKey::parse(&printed).expect("keygen prints the public key");
    let mode = std::fs::metadata(&key).expect("secret file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the secret key file has mode {mode:o}");
    assert_eq!(std::fs::read_to_string(&public_file).expect("FILE.pub").trim(), printed);
    let secret_text = std::fs::read_to_string(&key).expect("secret");
    let secret = SecretKey::parse_file(&secret_text).expect("a secret key file");
    assert_eq!(secret.public(), public, "FILE.pub is not the secret's public key");
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&public.fingerprint()), "{stderr}");
    assert!(stderr.contains(&format!("trusted_keys = [\"{printed}\"]")), "{stderr}");

    let pub_before = std::fs::read(&public_file).expect("pub");
    let all = run_fail(dars().arg("keygen").arg("--out").arg(&key));
    assert!(all.contains("already exists"), "{all}");
    assert_eq!(
        std::fs::read_to_string(&key).expect("secret"),
        secret_text,
        "the key was overwritten"
    );
    assert_eq!(
        std::fs::read(&public_file).expect("pub"),
        pub_before,
        "FILE.pub was overwritten"
    );
    let mode = std::fs::metadata(&key).expect("secret file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn import_check_and_verify_of_a_package_store_nothing() {
    let work = tempfile::tempdir().expect("work");
    let w = work.path();
    let publisher = Publisher::new();
    small_lessons(&w.join("v1"), 1);
    let v2 = small_lessons(&w.join("v2"), 2);
    let pkg = w.join("pkg");
    publisher.publish(&w.join("v1"), &pkg, 1);
    // On a stick: found in its DARS/ folder.
    let stick = w.join("stick");
    publisher.publish(&w.join("v2"), &stick.join("DARS"), 2);
    let trusted = format!("[\"{}\"]", publisher.public.to_text());

    let data = w.join("data");
    let out = run_ok(
        dars()
            .arg("--data")
            .arg(&data)
            .arg("--config")
            .arg(publisher.config())
            .args(["import", "--check"])
            .arg(&pkg),
    );
    assert!(
        out.contains("ok: 4 lessons") && out.contains("nothing was stored"),
        "{out}"
    );
    let out = run_ok(
        dars()
            .arg("--data")
            .arg(&data)
            .env("DARS_TRUSTED_KEYS", &trusted)
            .arg("verify")
            .arg(&stick),
    );
    assert!(
        out.contains("ok: 4 lessons") && out.contains("nothing was stored"),
        "{out}"
    );
    assert!(
        !data.join(dars::store::DB_FILE).exists(),
        "checking a package created the store"
    );
    // Untrusted: the same checks refuse it and still store nothing.
    let all = run_fail(dars().arg("--data").arg(&data).args(["import", "--check"]).arg(&pkg));
    assert!(
        all.contains("does not trust") && all.contains(&publisher.fingerprint()),
        "{all}"
    );
    assert!(!data.join(dars::store::DB_FILE).exists());

    // On a store that holds lessons, checking a newer package leaves them as they are.
    import_pkg(&data, &pkg, &publisher.trusting()).expect("import v1");
    let before = snapshot(&data);
    run_ok(
        dars()
            .arg("--data")
            .arg(&data)
            .env("DARS_TRUSTED_KEYS", &trusted)
            .args(["import", "--check"])
            .arg(&stick),
    );
    run_ok(
        dars()
            .arg("--data")
            .arg(&data)
            .env("DARS_TRUSTED_KEYS", &trusted)
            .arg("verify")
            .arg(&stick),
    );
    assert_eq!(snapshot(&data), before, "checking changed the store");
    // A damaged stick fails the check.
    let (_, manifest) = manifest_of(&stick.join("DARS"));
    let film = manifest
        .lessons
        .iter()
        .flat_map(|l| &l.files)
        .find(|f| f.path.ends_with(".mp4"))
        .expect("film");
    let blob = stick
        .join("DARS")
        .join(dars::package::blob_path(film.hash().expect("hash"), None));
    flip_byte(&blob, 1000);
    let all = run_fail(
        dars()
            .arg("--data")
            .arg(&data)
            .env("DARS_TRUSTED_KEYS", &trusted)
            .args(["import", "--check"])
            .arg(&stick),
    );
    assert!(all.contains("damaged") && all.contains("media/video.mp4"), "{all}");
    assert_eq!(snapshot(&data), before);
    let _ = v2;
}

// ---------------------------------------------------------------------------------------------
// Sticks used again

#[test]
fn exporting_again_onto_a_damaged_stick_repairs_it() {
    let work = tempfile::tempdir().expect("work");
    let w = work.path();
    let publisher = Publisher::new();
    small_lessons(&w.join("src"), 1);
    let local = local_lessons(&w.join("local"));
    let data = w.join("data");
    import_pkg(
        &data,
        &{
            let pkg = w.join("pkg");
            publisher.publish(&w.join("src"), &pkg, 1);
            pkg
        },
        &publisher.trusting(),
    )
    .expect("import");
    crate::common::import(&data, &w.join("local"));
    let stick = w.join("stick");
    std::fs::create_dir(&stick).expect("stick");
    run_ok(dars().arg("--data").arg(&data).arg("export").arg(&stick));
    run_ok(dars().arg("--config").arg(publisher.config()).arg("verify").arg(&stick));

    // A sector of the stick goes bad: a text blob and a film change, keeping their lengths.
    let (_, manifest) = manifest_of(&stick.join("DARS"));
    let film = manifest
        .lessons
        .iter()
        .flat_map(|l| &l.files)
        .find(|f| f.path.ends_with(".mp4"))
        .expect("film");
    let film_blob = stick
        .join("DARS")
        .join(dars::package::blob_path(film.hash().expect("hash"), None));
    flip_byte(&film_blob, 600_000);
    let page = Hash::of(&local["teacher-notes"]["index.html"]);
    let page_blob = stick.join("DARS").join(dars::package::blob_path(page, None));
    flip_byte(&page_blob, 100);
    let all = run_fail(dars().arg("--config").arg(publisher.config()).arg("verify").arg(&stick));
    assert!(all.contains("damaged"), "{all}");

    // The technician exports again onto the same stick, as the message says to copy it again.
    run_ok(dars().arg("--data").arg(&data).arg("export").arg(&stick));
    let out = run(dars().arg("--config").arg(publisher.config()).arg("verify").arg(&stick));
    assert!(
        out.status.success(),
        "the stick is still damaged after a new export:\n{}",
        text(&out.stderr)
    );
}

#[test]
fn a_sequence_number_reused_for_other_content_is_refused_and_exports_stay_what_is_served() {
    let work = tempfile::tempdir().expect("work");
    let w = work.path();
    let publisher = Publisher::new();
    let v1 = small_lessons(&w.join("v1"), 1);
    small_lessons(&w.join("v2"), 2);
    // The publisher (wrongly) uses sequence 5 twice, in two package folders.
    let (a, b) = (w.join("a"), w.join("b"));
    publisher.publish(&w.join("v1"), &a, 5);
    publisher.publish(&w.join("v2"), &b, 5);
    let data = w.join("data");
    import_pkg(&data, &a, &publisher.trusting()).expect("import a");
    let before = snapshot(&data);
    // Served v1 but exported (from the first manifest) something else, or the reverse, would
    // split one centre in two: the second package is refused.
    for extra in [&[][..], &["--allow-downgrade"][..]] {
        let all = run_fail(
            dars()
                .arg("--data")
                .arg(&data)
                .arg("--config")
                .arg(publisher.config())
                .arg("import")
                .arg(&b)
                .args(extra),
        );
        assert!(all.contains("sequence 5") && all.contains("--seq"), "{all}");
        assert!(all.contains("nothing was changed"), "{all}");
        assert_eq!(snapshot(&data), before, "a refused package changed the store");
    }
    assert_stored(&data, &v1);
    // What the centre exports is what it serves, verifiably.
    let stick = w.join("stick");
    std::fs::create_dir(&stick).expect("stick");
    run_ok(dars().arg("--data").arg(&data).arg("export").arg(&stick));
    run_ok(dars().arg("--config").arg(publisher.config()).arg("verify").arg(&stick));
    let elsewhere = w.join("elsewhere");
    import_pkg(&elsewhere, &stick, &publisher.trusting()).expect("import the export");
    assert_eq!(
        snapshot(&elsewhere).lessons,
        before.lessons,
        "the export carries other lessons than the centre serves"
    );
}

#[test]
fn unsigned_local_lessons_on_a_stick_cannot_replace_the_signed_lessons_beside_them() {
    let work = tempfile::tempdir().expect("work");
    let w = work.path();
    let publisher = Publisher::new();
    let signed = small_lessons(&w.join("src"), 1);
    let pkg = w.join("pkg");
    publisher.publish(&w.join("src"), &pkg, 1);
    // Someone adds an unsigned local.json to the stick that names a signed lesson's id, with
    // other content (here: another signed lesson's files, so every blob is present).
    let (_, manifest) = manifest_of(&pkg);
    let mut forged = manifest.lessons[1].clone();
    forged.id = manifest.lessons[0].id.clone();
    forged.title = "Not from the ministry".to_owned();
    let local = Manifest {
        format: dars::package::MANIFEST_FORMAT.to_owned(),
        publisher: "local".to_owned(),
        seq: 0,
        created: manifest.created.clone(),
        dictionary: None,
        lessons: vec![forged],
    };
    std::fs::write(pkg.join("local.json"), serde_json::to_vec_pretty(&local).expect("json")).expect("local.json");
    let index_path = pkg.join("package.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).expect("index")).expect("index json");
    index["local"] = serde_json::json!("local.json");
    std::fs::write(&index_path, serde_json::to_vec_pretty(&index).expect("json")).expect("index");

    let data = w.join("data");
    let target = manifest.lessons[0].id.clone();
    match import_pkg(&data, &pkg, &publisher.trusting()) {
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains(&target), "{message}");
            assert!(!data.join(dars::store::DB_FILE).exists() || snapshot(&data).lessons.is_empty());
        }
        Ok(_) => {
            // Accepted: the signed lesson must still be the one served, under its publisher.
            let shown = snapshot(&data);
            let lesson = &shown.lessons[&target];
            assert_eq!(
                lesson.origin,
                format!("key:{}", publisher.fingerprint()),
                "an unsigned local.json replaced signed lesson {target}: {lesson:?}"
            );
            assert_eq!(lesson.files, hashes(&signed[&target]));
        }
    }
}

#[test]
fn a_local_lesson_never_replaces_a_signed_one() {
    let work = tempfile::tempdir().expect("work");
    let w = work.path();
    let publisher = Publisher::new();
    let signed = small_lessons(&w.join("v1"), 1);
    let pkg = w.join("pkg");
    publisher.publish(&w.join("v1"), &pkg, 3);
    let data = w.join("data");
    import_pkg(&data, &pkg, &publisher.trusting()).expect("signed import");
    let before = snapshot(&data);
    // A teacher's folder that reuses a ministry lesson id is refused for that lesson only.
    let id = signed.keys().next().expect("a lesson").clone();
    let teacher = w.join("teacher");
    crate::common::write_lesson(&teacher, &id, &[("index.html", b"<p>mine</p>")]);
    crate::common::write_lesson(&teacher, "my-own", &[("index.html", b"<p>mine</p>")]);
    let report = crate::common::import(&data, &teacher);
    assert_eq!(report.added, vec!["my-own".to_owned()], "{report:?}");
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert!(
        report.errors[0].problem.contains("signed by publisher"),
        "{}",
        report.errors[0]
    );
    let after = snapshot(&data);
    assert_eq!(
        after.lessons.get(&id),
        before.lessons.get(&id),
        "the signed lesson must stay as it was"
    );
    assert!(after.lessons[&id].origin.starts_with("key:"));
}

/// The file of the (first) signed manifest `package.json` names.
fn manifest_path(pkg: &Path) -> PathBuf {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pkg.join("package.json")).expect("index")).expect("index json");
    pkg.join(index["manifests"][0]["manifest"].as_str().expect("a manifest"))
}

/// The lesson parts a package's root names: lesson id -> part file.
fn part_files(pkg: &Path) -> BTreeMap<String, PathBuf> {
    let Ok(Signed::Root(root)) = Signed::parse(&std::fs::read(manifest_path(pkg)).expect("root")) else {
        panic!("publish writes a root");
    };
    root.lessons
        .iter()
        .map(|l| (l.id.clone(), pkg.join(lesson_part_path(l.part().expect("part hash")))))
        .collect()
}

#[test]
fn an_update_reads_only_the_parts_of_the_lessons_that_changed() {
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    let publisher = Publisher::new();
    let v1 = small_lessons(&w.join("src1"), 1);
    // The ministry keeps one package folder and publishes each version into it.
    let pkg = w.join("pkg");
    publisher.publish(&w.join("src1"), &pkg, 1);
    let parts_v1 = part_files(&pkg);
    let blobs_v1 = tree(&pkg.join("blobs"));
    let data = w.join("data");
    let report = import_pkg(&data, &pkg, &publisher.trusting()).expect("import v1");
    assert_eq!(report.added.len(), v1.len());

    // Version 2 changes some lessons (small_lessons: every entry page, lesson 1's film, ...).
    let mut v2 = small_lessons(&w.join("src2"), 1);
    let changed = "fizika-8-isiq";
    let mut files = v2[changed].clone();
    files.insert(
        "index.html".to_owned(),
        "<h1>Yeni</h1><p>Yeni bir dərs.</p>".as_bytes().to_vec(),
    );
    std::fs::remove_dir_all(w.join("src2").join(changed)).expect("clear");
    write_lesson_folder(&w.join("src2"), changed, "İşığın sınması v1", "az", 8, &files);
    v2.insert(changed.to_owned(), files);
    let published = publisher.publish(&w.join("src2"), &pkg, 2);
    assert_eq!(published.parts_written, 1, "one lesson changed: one new part");
    let parts_v2 = part_files(&pkg);
    for (id, part) in &parts_v2 {
        assert_eq!(
            part == &parts_v1[id],
            id != changed,
            "{id}: an unchanged lesson keeps its part"
        );
    }
    // Text blobs that did not change keep their files byte for byte: publish kept the
    // dictionary of version 1 (or neither uses one), so a mirror copies only what changed.
    for (rel, bytes) in &blobs_v1 {
        assert_eq!(
            std::fs::read(pkg.join("blobs").join(rel)).ok().as_ref(),
            Some(bytes),
            "blob {rel} was rewritten"
        );
    }

    // The unchanged lessons' parts are not even read: gone from the copy, the update still
    // imports, and the store serves exactly version 2.
    let trimmed = w.join("trimmed");
    copy_tree(&pkg, &trimmed);
    for (id, part) in part_files(&trimmed) {
        if id != changed {
            std::fs::remove_file(part).expect("remove part");
        }
    }
    // Version 1 came days ago: its contents are past the hour's grace, so the update also
    // deletes the entry page it replaced (in the transaction that shows the new one), and only that.
    let old_entry = Hash::of(&v1[changed]["index.html"]);
    let conn = rusqlite::Connection::open(data.join(dars::store::DB_FILE)).expect("open store");
    conn.execute("UPDATE blobs SET added_at = added_at - 2 * 86400", [])
        .expect("age");
    drop(conn);
    let before = blob_count(&data);
    let report = import_pkg(&data, &trimmed, &publisher.trusting()).expect("import v2");
    assert_eq!(report.updated, [changed.to_owned()], "{report:?}");
    assert_eq!(report.unchanged.len(), v2.len() - 1, "{report:?}");
    assert_eq!(report.collected, 1, "{report:?}");
    assert_eq!(blob_count(&data), before, "the new entry page in, the old one out");
    let conn = rusqlite::Connection::open(data.join(dars::store::DB_FILE)).expect("open store");
    let kept: i64 = conn
        .query_row("SELECT count(*) FROM blobs WHERE hash = ?1", [&old_entry.0[..]], |r| {
            r.get(0)
        })
        .expect("count");
    assert_eq!(kept, 0, "the replaced entry page is gone");
    drop(conn);
    assert_stored(&data, &v2);
    assert!(snapshot(&data).lessons.values().all(|l| l.seq == 2));
    // A store that lacks them still needs them, and says which is missing.
    let fresh = w.join("fresh");
    let err = import_pkg(&fresh, &trimmed, &publisher.trusting())
        .expect_err("parts are missing")
        .to_string();
    assert!(err.contains("description") && err.contains("missing"), "{err}");
    let all = run_fail(
        dars()
            .arg("--config")
            .arg(publisher.config())
            .arg("verify")
            .arg(&trimmed),
    );
    assert!(all.contains("missing"), "{all}");

    // Exported and imported at a second centre, the lessons are still the ministry's.
    assert_stored(&export_elsewhere(&data, w, &publisher), &v2);
}

/// Exports everything the store at `data` holds onto a stick under `w` and imports it into a
/// second store there, whose lessons must all still be `publisher`'s; returns that store.
fn export_elsewhere(data: &Path, w: &Path, publisher: &Publisher) -> PathBuf {
    let stick = w.join("stick");
    std::fs::create_dir_all(&stick).expect("stick");
    Library::open(data)
        .expect("open")
        .export(&stick, &[], &Progress::new())
        .expect("export");
    let other = w.join("other");
    import_pkg(&other, &stick, &publisher.trusting()).expect("import the export");
    let origins: BTreeSet<String> = snapshot(&other).lessons.values().map(|l| l.origin.clone()).collect();
    assert_eq!(origins, BTreeSet::from([format!("key:{}", publisher.fingerprint())]));
    other
}

#[test]
fn a_package_with_a_whole_manifest_from_an_older_dars_still_imports() {
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    let publisher = Publisher::new();
    let v1 = small_lessons(&w.join("src"), 1);
    let pkg = w.join("pkg");
    publisher.publish(&w.join("src"), &pkg, 1);
    // Rewrite it as dars wrote packages before roots: one signed manifest with every lesson
    // in full (dars-manifest/1), no lesson parts.
    let (path, mut manifest) = manifest_of(&pkg);
    manifest.format = dars::package::MANIFEST_FORMAT.to_owned();
    let bytes = serde_json::to_vec_pretty(&manifest).expect("json");
    let secret = SecretKey::parse_file(&publisher.secret_text).expect("secret");
    std::fs::write(&path, &bytes).expect("manifest");
    std::fs::write(
        path.with_extension("sig"),
        dars::keys::signature_to_text(&secret.sign(&bytes)),
    )
    .expect("sig");
    std::fs::remove_dir_all(pkg.join("lessons")).expect("no parts");
    let data = w.join("data");
    let report = import_pkg(&data, &pkg, &publisher.trusting()).expect("import the old format");
    assert_eq!(report.added.len(), v1.len());
    assert_stored(&data, &v1);
    // Export carries the old manifest as received: still the ministry's elsewhere.
    assert_stored(&export_elsewhere(&data, w, &publisher), &v1);

    // The same lessons published again as a root: nothing a user would see changes, and the
    // store learns each lesson's part, so the next update skips them unread.
    let again = w.join("again");
    publisher.publish(&w.join("src"), &again, 2);
    let report = import_pkg(&data, &again, &publisher.trusting()).expect("import the root");
    assert!(report.updated.is_empty() && report.added.is_empty(), "{report:?}");
    assert_eq!(report.unchanged.len(), v1.len());
    let trimmed = w.join("trimmed");
    copy_tree(&again, &trimmed);
    std::fs::remove_dir_all(trimmed.join("lessons")).expect("no parts");
    let report = import_pkg(&data, &trimmed, &publisher.trusting()).expect("parts known");
    assert_eq!(report.unchanged.len(), v1.len(), "{report:?}");
    assert_stored(&data, &v1);
}

//! The sample lessons of `content/`, built into the binary so a fresh `dars serve` shows real
//! lessons with no setup.

use rust_embed::RustEmbed;

use crate::service::Scan;

#[derive(RustEmbed)]
#[folder = "content/"]
#[exclude = "*.md"]
#[exclude = "LICENSE"]
struct Samples;

/// The embedded sample lessons, validated like any lesson folder.
pub fn samples() -> Scan {
    let files = Samples::iter()
        .filter_map(|path| Samples::get(&path).map(|file| (path.into_owned(), file.data)))
        .collect();
    crate::service::scan_memory(files)
}

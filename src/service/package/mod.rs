//! Signed packages: publishing a folder of lessons, exporting what a centre holds, checking a
//! package on disk (a USB stick) and importing it in one transaction.

mod export;
mod import;
mod publish;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use export::{ExportReport, LOCAL_FILE, Plan, blob_bytes, export, plan};
pub use import::{CheckReport, ImportPackageOptions, PackageReport, check_package, import_package};
pub(crate) use import::{
    Dicts, check_sequences, commit, decode_blob, flush, load_dictionaries, needed_blobs, stored_first, stored_parts,
    verify_manifests,
};
pub use publish::{DictionaryChoice, PublishOptions, PublishReport, publish};

use crate::keys::PublicKey;
use crate::package::{INDEX_FILE, Index, USB_DIR, check_index};

/// What can go wrong with a package, phrased for the technician holding the stick.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("no package in {0}: expected {INDEX_FILE} there or in its {USB_DIR}/ folder")]
    NotAPackage(PathBuf),
    #[error("{file} was written by a newer dars ({problem}); install a newer dars to read this package")]
    NewerFormat { file: String, problem: String },
    #[error("{file} is damaged: {problem}. Copy the package again from its source")]
    BadDocument { file: String, problem: String },
    #[error(
        "the package is signed by key {fingerprint}, which this centre does not trust.\n  \
         If the ministry (or the publisher) confirms this fingerprint, add the key to the config file:\n  \
         trusted_keys = [\"{key}\"]"
    )]
    UnknownSigner { fingerprint: String, key: String },
    #[error(
        "the signature of {manifest} does not match its contents: the package was altered or damaged. Do not use it; copy it again from the publisher"
    )]
    BadSignature { manifest: String },
    #[error(
        "this package (sequence {offered}) is older than the one installed from key {fingerprint} (sequence {installed}); \
         nothing was changed. To go back to the older lessons on purpose, run the import again with --allow-downgrade"
    )]
    Downgrade {
        fingerprint: String,
        installed: u64,
        offered: u64,
    },
    #[error(
        "key {fingerprint} already published a different package with sequence {seq}; nothing was changed. \
         The publisher must publish again with a higher --seq"
    )]
    SequenceReused { fingerprint: String, seq: u64 },
    #[error("lesson {lesson}, file {path}: its content ({file}) is missing from the package. Copy the package again")]
    MissingBlob { lesson: String, path: String, file: String },
    #[error("lesson {lesson}: its description ({file}) is missing from the package. Copy the package again")]
    MissingPart { lesson: String, file: String },
    #[error("lesson {lesson}: its description ({file}) is damaged: {problem}. Copy the package again")]
    DamagedPart {
        lesson: String,
        file: String,
        problem: String,
    },
    #[error("lesson {lesson}, file {path}: its content ({file}) is damaged: {problem}. Copy the package again")]
    DamagedBlob {
        lesson: String,
        path: String,
        file: String,
        problem: String,
    },
    #[error(
        "cannot read {path}: {source}. If the USB stick was removed, plug it in again and repeat the import; nothing was changed"
    )]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error(
        "the package folder {0} disappeared during the import (USB stick removed?). Plug it in again and repeat the import; nothing was changed"
    )]
    Gone(PathBuf),
    #[error(
        "lesson {0} is in two manifests of this package, so which one to show cannot be decided; the package was put together wrongly"
    )]
    LessonTwice(String),
    #[error(
        "lesson {lesson} in this package is unsigned (local), but this centre has it from publisher {fingerprint}; \
         an unsigned lesson never replaces a signed one. Nothing was changed"
    )]
    LocalOverSigned { lesson: String, fingerprint: String },
    #[error("{INDEX_FILE} lists lesson {0}, but its manifest does not have it")]
    NotInManifest(String),
    #[error("the sequence number must grow: {existing} is already published in {dir}; use --seq {next} or higher")]
    SequenceMustGrow { dir: PathBuf, existing: u64, next: u64 },
    #[error("no such lesson in the store: {0} (see `dars status` or /api/v1/lessons for the ids)")]
    UnknownLesson(String),
}

/// Finds the package folder: `path` itself, or `path/DARS` (a USB stick's root).
pub fn locate(path: &Path) -> Result<PathBuf, PackageError> {
    if path.join(INDEX_FILE).is_file() {
        Ok(path.to_path_buf())
    } else if path.join(USB_DIR).join(INDEX_FILE).is_file() {
        Ok(path.join(USB_DIR))
    } else {
        Err(PackageError::NotAPackage(path.to_path_buf()))
    }
}

/// Whether `path` holds a package (rather than lesson folders).
pub fn is_package(path: &Path) -> bool {
    locate(path).is_ok()
}

/// Reads a small file of the package, telling a pulled stick from a damaged one.
pub(crate) fn read_file(root: &Path, rel: &str) -> Result<Vec<u8>, PackageError> {
    let path = root.join(rel);
    let mut bytes = Vec::new();
    match std::fs::File::open(&path).and_then(|mut f| f.read_to_end(&mut bytes)) {
        Ok(_) => Ok(bytes),
        Err(e) => Err(io_problem(root, path, e)),
    }
}

fn io_problem(root: &Path, path: PathBuf, e: std::io::Error) -> PackageError {
    if !root.join(INDEX_FILE).exists() {
        PackageError::Gone(root.to_path_buf())
    } else {
        PackageError::Unreadable { path, source: e }
    }
}

/// A document that does not parse: damaged, or (an unknown field) from a newer dars.
pub(crate) fn document_error(file: &str, e: &serde_json::Error) -> PackageError {
    let problem = e.to_string();
    if problem.contains("unknown field") {
        PackageError::NewerFormat {
            file: file.to_owned(),
            problem,
        }
    } else {
        PackageError::BadDocument {
            file: file.to_owned(),
            problem,
        }
    }
}

pub(crate) fn read_index(root: &Path) -> Result<Index, PackageError> {
    let bytes = read_file(root, INDEX_FILE)?;
    let index: Index = serde_json::from_slice(&bytes).map_err(|e| document_error(INDEX_FILE, &e))?;
    check_index(&index).map_err(|problem| PackageError::BadDocument {
        file: INDEX_FILE.to_owned(),
        problem,
    })?;
    Ok(index)
}

/// Parses the configured `trusted_keys`, naming a bad one.
pub fn parse_trusted(keys: &[String]) -> Result<Vec<PublicKey>, crate::keys::KeyError> {
    keys.iter().map(|k| PublicKey::parse(k)).collect()
}

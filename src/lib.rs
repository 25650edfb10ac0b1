//! dars: an offline-first lesson server for school computer centres.
//!
//! # Layout
//! - [`lesson`]: the lesson source format (`lesson.toml`) and its validation rules.
//! - [`keys`]: publisher keys (Ed25519), their text forms and fingerprints.
//! - [`package`]: the signed package format that travels by USB, mirror and peer.
//! - [`store`]: the SQLite file: schema migrations, content-addressed blobs, the catalogue.
//! - [`service`]: the operations cli and http share (import, lookup, status, verify, usage
//!   figures, field reports).
//! - [`ui`]: what phone pages and saved files share: the translation table, the profiles script.
//! - [`http`]: the axum server: lesson files, JSON API, pages, `/metrics`, SVG charts, limits,
//!   graceful shutdown.
//! - [`discovery`]: mDNS announcement and browsing (never fatal).
//! - [`config`]: settings layered defaults < file < environment < flags.
//! - [`cli`]: the command line.
//! - [`content`]: the sample lessons built into the binary.
//! - [`text`]: search text: visible text of HTML, folding (`ders` finds `dərs`), snippets.
//!
//! Data flows one way: `cli`/`http` -> `service` -> `store`.

pub mod cli;
pub mod config;
pub mod content;
pub mod discovery;
pub mod http;
pub mod keys;
pub mod lesson;
pub mod package;
pub mod service;
pub mod store;
pub mod text;
pub mod ui;

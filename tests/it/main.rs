//! Integration tests: a real SQLite file in a temp folder, the real server on a port-0
//! listener, real HTTP. Only the CLI tests (`cli`, `cli_users`) and the browser test spawn the
//! binary.

mod admin;
mod admin_lessons;
mod admin_sticks;
mod admin_usage;
mod api;
mod backup;
mod browser;
mod browser_console;
mod cli;
mod cli_users;
mod common;
mod files;
mod fuzz;
mod import;
mod limits;
mod mdns;
mod metrics;
mod offline;
mod packages;
mod pages;
mod report;
mod search;
mod sync;
mod usage;
mod variants;

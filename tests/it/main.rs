//! Integration tests: a real SQLite file in a temp folder, the real server on a port-0
//! listener, real HTTP. Only `cli` spawns the binary.

mod api;
mod cli;
mod common;
mod files;
mod fuzz;
mod import;
mod limits;
mod mdns;
mod packages;
mod sync;

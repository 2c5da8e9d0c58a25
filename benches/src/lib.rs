//! sessionward's benchmark harness: the handlers every variant serves (see [`servers`]). The
//! `sessionward-bench` binary runs the side-by-side load comparison; `docs/performance.md`
//! says how.
#![forbid(unsafe_code)]

pub mod servers;

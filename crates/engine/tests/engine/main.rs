//! The scheduler against the real store (SQLite and PostgreSQL) with the fake executors:
//! happy paths, cancellation, retries, deadlines, lease takeover after a crash, exactly-once
//! push submission across a crash, and many schedulers sharing one database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod claims;
mod managed;
mod push;
mod takeover;

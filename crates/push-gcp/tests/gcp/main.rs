//! The Cloud Run push backend against the in-repo Cloud Run fake.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod smoke;

//! Black-box tests of Ferry: the HTTP API over real sockets (an in-process server per test,
//! or the `ferry` binary as a child process), the CLI as a person would use it, and the
//! README's tour.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod bad_input;
mod cloudrun;
mod deploy;
mod ecs;
mod edge;
mod isolation;
mod managed;
mod openapi;
mod processes;
mod roles;
mod runs;
mod tour;

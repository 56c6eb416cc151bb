//! The sandbox host, end to end: every example flow of the three kinds, every hostile flow,
//! every denied capability, artifact validation and the compiled-artifact cache. The flows are
//! built from sandbox/ by sandbox/build.sh (see `support::ensure_built`).

mod artifacts;
mod denials;
mod examples;
mod hostile;
mod support;

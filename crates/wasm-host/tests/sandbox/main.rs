//! The sandbox host, end to end: every example flow of the three kinds, every hostile flow,
//! every denied capability, artifact validation, the compiled-artifact cache, and (on Linux)
//! the confinement of the executor worker processes. The flows are
//! built from sandbox/ by sandbox/build.sh (see `support::ensure_built`).

mod artifacts;
#[cfg(target_os = "linux")]
mod confine;
mod denials;
mod examples;
mod hostile;
mod support;

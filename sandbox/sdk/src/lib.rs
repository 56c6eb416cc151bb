//! Ferry's guest SDK: write a flow of the `ferry:flow` world (sandbox/wit) in a few lines.
//!
//! ```ignore
//! use ferry_flow_sdk::serde_json::{json, Value};
//!
//! ferry_flow_sdk::flow! {
//!     fn run(params: Value) -> Result<Value, String> {
//!         ferry_flow_sdk::log::info("starting");
//!         Ok(json!({"greeting": "hello"}))
//!     }
//! }
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release` as a `cdylib`: the result is a
//! component that exports `run` and imports `ferry:flow/host` (plus the WASI interfaces the
//! Rust standard library uses, all of which Ferry provides, mostly denied).

// Lets the generated bindings name this crate the same way from inside it and from a flow.
extern crate self as ferry_flow_sdk;

use std::fmt::Display;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use serde_json;

/// The raw bindings of the `ferry:flow` world, for a flow that needs more control than
/// [`flow!`] gives (for example, to build its JSON result by hand).
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "flow",
        pub_export_macro: true,
        export_macro_name: "__export_flow",
        default_bindings_module: "ferry_flow_sdk::bindings",
    });
}

use bindings::ferry::flow::host;

/// Structured log lines, written to the run's log through the host (not stdout).
pub mod log {
    use super::host::{self, LogLevel};

    pub fn debug(message: impl AsRef<str>) {
        host::log(LogLevel::Debug, message.as_ref());
    }

    pub fn info(message: impl AsRef<str>) {
        host::log(LogLevel::Info, message.as_ref());
    }

    pub fn warn(message: impl AsRef<str>) {
        host::log(LogLevel::Warn, message.as_ref());
    }

    pub fn error(message: impl AsRef<str>) {
        host::log(LogLevel::Error, message.as_ref());
    }
}

/// A secret the run was granted, by name; `None` when it was not granted.
pub fn secret(name: &str) -> Option<String> {
    host::secret(name)
}

/// Reports progress: `fraction` in [0, 1] (clamped by the host) and a short message.
pub fn progress(fraction: f32, message: &str) {
    host::progress(fraction, message);
}

/// What [`flow!`] calls: parses the parameters, runs the flow, serializes its result.
#[doc(hidden)]
pub fn __run<P, R, E>(params: &str, flow: impl FnOnce(P) -> Result<R, E>) -> Result<String, String>
where
    P: DeserializeOwned,
    R: Serialize,
    E: Display,
{
    let params = serde_json::from_str(params).map_err(|e| format!("invalid parameters: {e}"))?;
    let result = flow(params).map_err(|e| e.to_string())?;
    serde_json::to_string(&result).map_err(|e| format!("the result is not JSON: {e}"))
}

/// Defines a flow: a function from its parameters (any `Deserialize` type, such as
/// `serde_json::Value`) to `Result<R, E>` where `R: Serialize` and `E: Display`, and exports it
/// as the component's `run`.
#[macro_export]
macro_rules! flow {
    ($(#[$attr:meta])* fn $name:ident ($arg:ident : $ty:ty) -> $ret:ty $body:block) => {
        $(#[$attr])*
        fn $name($arg: $ty) -> $ret $body

        #[doc(hidden)]
        struct __FerryFlow;

        impl $crate::bindings::Guest for __FerryFlow {
            fn run(
                params: ::std::string::String,
            ) -> ::core::result::Result<::std::string::String, ::std::string::String> {
                $crate::__run(&params, $name)
            }
        }

        $crate::bindings::__export_flow!(__FerryFlow with_types_in $crate::bindings);
    };
}

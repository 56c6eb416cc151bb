//! The OpenAPI schemas of request fields and parameters whose rules live in ferry-core (names,
//! pool types, roles, run states, limits), built from those rules so that the document says
//! what the server checks: a client generator gets the enums and patterns, and schemathesis
//! generates requests that reach past validation. (`#[schema(schema_with = ...)]` and
//! `#[param(schema_with = ...)]` name these functions.)

use ferry_core::{Name, PoolLimits, PoolType, Role, RunState};
use utoipa::openapi::schema::{AdditionalProperties, Object, ObjectBuilder, SchemaType, Type};

/// What [`Name::parse`] accepts: 1-63 of a-z, 0-9 and '-', neither first nor last a '-'.
pub const NAME_PATTERN: &str = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";

/// `sha256:` and 64 lowercase hex digits: an artifact's digest.
pub const DIGEST_PATTERN: &str = "^sha256:[0-9a-f]{64}$";

fn string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

fn one_of<'a>(description: &str, values: impl IntoIterator<Item = &'a str>) -> Object {
    string(description)
        .enum_values(Some(values.into_iter().collect::<Vec<_>>()))
        .build()
}

/// `schema`, or null: what an optional field (`Option<T>`) takes, null being as good as absent.
fn or_null(mut schema: Object) -> Object {
    if let SchemaType::Type(t) = schema.schema_type {
        schema.schema_type = SchemaType::Array(vec![t, Type::Null]);
    }
    schema
}

/// An optional name.
pub fn name_or_null() -> Object {
    or_null(name())
}

/// An optional digest.
pub fn digest_or_null() -> Object {
    or_null(digest())
}

/// An optional idempotency key.
pub fn idempotency_key_or_null() -> Object {
    or_null(idempotency_key())
}

/// Optional limits.
pub fn limits_or_null() -> Object {
    or_null(limits())
}

/// A pool's, secret's, credential's or workspace's name.
pub fn name() -> Object {
    string("1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit")
        .pattern(Some(NAME_PATTERN))
        .min_length(Some(1))
        .max_length(Some(Name::MAX_LEN))
        .build()
}

pub fn pool_type() -> Object {
    one_of("The pool's type", PoolType::ALL.iter().map(|t| t.as_str()))
}

pub fn role() -> Object {
    one_of("The key's role", Role::ALL.iter().map(|r| r.as_str()))
}

pub fn run_state() -> Object {
    one_of("A run state", RunState::ALL.iter().map(|s| s.as_str()))
}

/// An uploaded artifact's digest.
pub fn digest() -> Object {
    string("`sha256:<64 lowercase hex digits>` of an uploaded flow")
        .pattern(Some(DIGEST_PATTERN))
        .build()
}

/// What [`ferry_core::IdempotencyKey::parse`] accepts.
pub fn idempotency_key() -> Object {
    string("1-255 printable ASCII characters; the same key again returns the run it created")
        .pattern(Some("^[!-~]{1,255}$"))
        .build()
}

/// The `{name}` of a pool's or a secret's routes.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NamePath {
    /// 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit.
    #[param(
        pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        min_length = 1,
        max_length = 63
    )]
    pub name: String,
}

/// A pool's or run's limits: each field within the range [`PoolLimits::validate`] holds it to,
/// no other field. (A managed run's memory must also fit this server's executor budget, and
/// `log_bytes` its `FERRY_MAX_LOG_BYTES`: a 422 says so.)
pub fn limits() -> Object {
    let probes: [(&str, PoolLimits); 5] = [
        (
            "Linear memory a flow may use, in MiB (managed pools)",
            PoolLimits {
                memory_mb: Some(u32::MAX),
                ..PoolLimits::default()
            },
        ),
        (
            "Wall-clock time an attempt may take, in seconds",
            PoolLimits {
                timeout_s: Some(u32::MAX),
                ..PoolLimits::default()
            },
        ),
        (
            "Instructions a flow may execute, in millions of fuel units (managed)",
            PoolLimits {
                cpu_fuel_m: Some(u64::MAX),
                ..PoolLimits::default()
            },
        ),
        (
            "Bytes of log a run may keep",
            PoolLimits {
                log_bytes: Some(u64::MAX),
                ..PoolLimits::default()
            },
        ),
        (
            "Bytes a flow may write to its scratch directory (managed)",
            PoolLimits {
                scratch_bytes: Some(u64::MAX),
                ..PoolLimits::default()
            },
        ),
    ];
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Limits of each run; an absent field is the built-in default",
        ))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for (description, probe) in probes {
        // The field and its range, as the check itself reports them for a value past every
        // range. (The test below holds the fields to PoolLimits's.)
        let Err(range) = probe.validate() else {
            continue;
        };
        object = object.property(
            range.field,
            or_null(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .description(Some(description))
                    .minimum(Some(range.min as f64))
                    .maximum(Some(range.max as f64))
                    .build(),
            ),
        );
    }
    object.build()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn the_limits_schema_names_every_field_of_pool_limits() {
        let all = ferry_core::PoolLimits {
            memory_mb: Some(1),
            timeout_s: Some(1),
            cpu_fuel_m: Some(1),
            log_bytes: Some(1),
            scratch_bytes: Some(1),
        };
        let mut fields: Vec<String> = serde_json::to_value(all)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut documented: Vec<String> = super::limits().properties.keys().cloned().collect();
        fields.sort();
        documented.sort();
        assert_eq!(fields, documented);
    }
}

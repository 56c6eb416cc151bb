//! `request_fields`: the domain parsers that the public API's request bodies are made of
//! (crates/core: `Name`, `IdempotencyKey`, `PoolType`, `CredentialKind`, `Role`, `PoolLimits`
//! and its narrowing, canonical JSON), each called on a field of a fuzzed body as the server's
//! handlers call it. The serde-derived request structs themselves live in
//! crates/server/src/api/ and are not covered (fuzz/README.md).
//!
//! Input: a JSON object with any of `name` (a pool, workspace, secret or credential name),
//! `idempotency_key`, `type`, `kind`, `role`, `limits` (a run's) and `pool_limits` (its
//! pool's).
//!
//! Properties:
//! - each parser accepts exactly what it documents (a DNS label of 1-63; 1-255 printable
//!   ASCII; one of the listed names), and its serde form agrees with it both ways;
//! - limits round-trip through JSON; `validate` accepts exactly the documented ranges; a run's
//!   limits narrowed by its pool's never exceed the pool's effective limits, take the run's
//!   value where it set one, and are refused (naming the field) only when the run asked for
//!   more;
//! - canonical JSON of the whole body parses back to the body and is a fixed point.

use ferry_core::{
    canonical_json, CredentialKind, IdempotencyKey, Name, PoolLimits, PoolType, Role,
};
use serde_json::Value;

pub fn check(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let canonical = canonical_json(&body);
    let back: Value = serde_json::from_str(&canonical)
        .unwrap_or_else(|e| panic!("canonical JSON {canonical:?} does not parse: {e}"));
    assert_eq!(
        canonical_json(&back),
        canonical,
        "canonical JSON is not a fixed point"
    );
    assert_eq!(back, body, "canonical JSON changed the value: {canonical}");

    let text = |f: &str| body.get(f).and_then(Value::as_str);
    if let Some(s) = text("name") {
        name(s);
    }
    if let Some(s) = text("idempotency_key") {
        idempotency_key(s);
    }
    if let Some(s) = text("type") {
        enum_like(
            s,
            PoolType::parse,
            PoolType::as_str,
            &PoolType::ALL.map(PoolType::as_str),
        );
    }
    if let Some(s) = text("kind") {
        enum_like(
            s,
            CredentialKind::parse,
            CredentialKind::as_str,
            &CredentialKind::ALL.map(CredentialKind::as_str),
        );
    }
    if let Some(s) = text("role") {
        enum_like(s, Role::parse, Role::as_str, &Role::ALL.map(Role::as_str));
    }
    let run = body.get("limits").map(limits);
    let pool = body.get("pool_limits").map(limits);
    if let (Some(Some(run)), Some(Some(pool))) = (run, pool) {
        narrowing(&pool, &run);
    }
}

fn name(s: &str) {
    let b = s.as_bytes();
    let valid = (1..=Name::MAX_LEN).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-';
    let parsed = Name::parse(s);
    assert_eq!(parsed.is_ok(), valid, "Name::parse({s:?}) = {parsed:?}");
    let via_serde = serde_json::from_value::<Name>(Value::String(s.to_owned()));
    assert_eq!(via_serde.is_ok(), valid, "Name's serde disagrees on {s:?}");
    if let Ok(n) = parsed {
        assert_eq!(n.as_str(), s);
        assert_eq!(n.to_string(), s);
        assert_eq!(
            serde_json::to_value(&n).ok(),
            Some(Value::String(s.to_owned()))
        );
    }
}

fn idempotency_key(s: &str) {
    let valid =
        (1..=IdempotencyKey::MAX_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
    let parsed = IdempotencyKey::parse(s);
    assert_eq!(
        parsed.is_ok(),
        valid,
        "IdempotencyKey::parse({s:?}) = {parsed:?}"
    );
    let via_serde = serde_json::from_value::<IdempotencyKey>(Value::String(s.to_owned()));
    assert_eq!(
        via_serde.is_ok(),
        valid,
        "IdempotencyKey's serde disagrees on {s:?}"
    );
    if let Ok(k) = parsed {
        assert_eq!(k.as_str(), s);
        assert_eq!(
            serde_json::to_value(&k).ok(),
            Some(Value::String(s.to_owned()))
        );
    }
}

fn enum_like<T: PartialEq + std::fmt::Debug + serde::de::DeserializeOwned>(
    s: &str,
    parse: fn(&str) -> Option<T>,
    as_str: fn(T) -> &'static str,
    all: &[&str],
) {
    let parsed = parse(s);
    assert_eq!(
        parsed.is_some(),
        all.contains(&s),
        "{s:?} parsed as {parsed:?}"
    );
    let via_serde = serde_json::from_value::<T>(Value::String(s.to_owned())).ok();
    assert_eq!(via_serde, parsed, "serde and parse disagree on {s:?}");
    if let Some(t) = parsed {
        assert_eq!(as_str(t), s);
    }
}

/// The documented ranges (`PoolLimits::validate`).
const RANGES: [(&str, u64, u64); 5] = [
    ("memory_mb", 1, 4096),
    ("timeout_s", 1, 7 * 24 * 3600),
    ("cpu_fuel_m", 1, 1_000_000_000),
    ("log_bytes", 0, 1 << 30),
    ("scratch_bytes", 0, 1 << 32),
];

fn fields(l: &PoolLimits) -> [Option<u64>; 5] {
    [
        l.memory_mb.map(u64::from),
        l.timeout_s.map(u64::from),
        l.cpu_fuel_m,
        l.log_bytes,
        l.scratch_bytes,
    ]
}

/// Parses limits as the API does; checks the round trip and the ranges.
fn limits(v: &Value) -> Option<PoolLimits> {
    let l = serde_json::from_value::<PoolLimits>(v.clone()).ok()?;
    let again = serde_json::to_value(l)
        .ok()
        .and_then(|v| serde_json::from_value::<PoolLimits>(v).ok());
    assert_eq!(again, Some(l), "limits do not round-trip");
    let in_range = RANGES
        .iter()
        .zip(fields(&l))
        .all(|((_, min, max), v)| v.is_none_or(|v| (*min..=*max).contains(&v)));
    assert_eq!(
        l.validate().is_ok(),
        in_range,
        "validate disagrees on {l:?}"
    );
    assert_eq!(
        l.effective().effective(),
        l.effective(),
        "effective is not idempotent"
    );
    in_range.then_some(l)
}

fn narrowing(pool: &PoolLimits, run: &PoolLimits) {
    let ceiling = fields(&pool.effective());
    let asked = fields(run);
    match pool.narrowed_by(run) {
        Ok(got) => {
            for (((name, ..), got), (ceiling, asked)) in RANGES
                .iter()
                .zip(fields(&got))
                .zip(ceiling.iter().zip(asked))
            {
                if let (Some(got), Some(ceiling)) = (got, ceiling) {
                    assert!(
                        got <= *ceiling,
                        "{name}: the run got {got} over the pool's {ceiling}"
                    );
                }
                match asked {
                    Some(asked) => assert_eq!(got, Some(asked), "{name}: not the run's value"),
                    None => assert_eq!(got, *ceiling, "{name}: not the pool's value"),
                }
            }
        }
        Err(e) => {
            let raised = RANGES
                .iter()
                .zip(ceiling.iter().zip(asked))
                .find(|(_, (c, a))| matches!((c, a), (Some(c), Some(a)) if a > c));
            let Some(((name, ..), _)) = raised else {
                panic!("refused {run:?} under {pool:?} though it asks for no more: {e}");
            };
            assert_eq!(e.field, *name, "the refusal names another field");
        }
    }
    assert_eq!(
        pool.narrowed_by(&PoolLimits::default()).ok(),
        Some(pool.effective()),
        "a run asking nothing does not get the pool's limits"
    );
}

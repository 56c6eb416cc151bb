//! Parsers of argument values (`KEY=VALUE`, inline or `@file` JSON, limits, timestamps), run
//! by clap so that a bad value is a usage error naming the flag.

use std::convert::Infallible;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::{Map, Value};

/// Keeps a secret out of `Debug` output from the moment it is parsed.
pub fn parse_secret(s: &str) -> Result<SecretString, Infallible> {
    Ok(SecretString::from(s))
}

/// A JSON value given inline, or as `@path` (a file) or `@-` (standard input).
pub fn parse_json(s: &str) -> Result<Value, String> {
    let text = match s.strip_prefix('@') {
        Some("-") => std::io::read_to_string(std::io::stdin())
            .map_err(|e| format!("cannot read standard input: {e}"))?,
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?
        }
        None => s.to_owned(),
    };
    serde_json::from_str(&text).map_err(|e| format!("not valid JSON: {e}"))
}

/// Like [`parse_json`], for values that must be JSON objects.
pub fn parse_json_object(s: &str) -> Result<Value, String> {
    match parse_json(s)? {
        v @ Value::Object(_) => Ok(v),
        other => Err(format!(
            "expected a JSON object like {{\"key\": 1}}, got {}",
            kind(&other)
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `KEY=VALUE`: the value is JSON when it parses as JSON (`n=3`, `ok=true`, `xs=[1,2]`,
/// `s="007"`), and a string otherwise (`name=alice`, `id=007`).
pub fn parse_key_value(s: &str) -> Result<(String, Value), String> {
    let Some((key, value)) = s.split_once('=') else {
        return Err(format!("expected KEY=VALUE, got {s:?}"));
    };
    if key.is_empty() {
        return Err(format!("the key is empty in {s:?}"));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((key.to_owned(), value))
}

/// Merges a JSON object (`--params`) with `KEY=VALUE` pairs (`--param`, later ones win).
/// `None` when neither was given, so the server applies its default.
pub fn merge_object(base: Option<Value>, pairs: Vec<(String, Value)>) -> Option<Value> {
    if base.is_none() && pairs.is_empty() {
        return None;
    }
    let mut map = match base {
        Some(Value::Object(m)) => m,
        // The parsers only let objects through.
        _ => Map::new(),
    };
    map.extend(pairs);
    Some(Value::Object(map))
}

/// A pool's concurrency limit on the command line: a number, or `none` to remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencyLimit(pub Option<u32>);

pub fn parse_concurrency_limit(s: &str) -> Result<ConcurrencyLimit, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(ConcurrencyLimit(None));
    }
    s.parse()
        .map(|n| ConcurrencyLimit(Some(n)))
        .map_err(|_| format!("expected a number or `none`, got {s:?}"))
}

/// An RFC 3339 timestamp (`2024-05-01T12:00:00Z`, or with an offset).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected a time like 2024-05-01T12:00:00Z: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_value_table() {
        let cases = [
            ("n=3", "n", json!(3)),
            ("x=-1.5", "x", json!(-1.5)),
            ("ok=true", "ok", json!(true)),
            ("nothing=null", "nothing", json!(null)),
            ("xs=[1, \"a\"]", "xs", json!([1, "a"])),
            ("o={\"a\":{\"b\":2}}", "o", json!({"a": {"b": 2}})),
            ("s=\"007\"", "s", json!("007")),
            ("name=alice", "name", json!("alice")),
            ("id=007", "id", json!("007")),
            ("empty=", "empty", json!("")),
            ("sp=hello world", "sp", json!("hello world")),
            ("eq=a=b", "eq", json!("a=b")),
            ("url=https://x/?q=1", "url", json!("https://x/?q=1")),
            ("broken={\"a\":", "broken", json!("{\"a\":")),
            ("ws= 3 ", "ws", json!(3)),
            ("dotted.key=1", "dotted.key", json!(1)),
        ];
        for (input, key, value) in cases {
            assert_eq!(
                parse_key_value(input).unwrap(),
                (key.to_owned(), value),
                "{input}"
            );
        }
    }

    #[test]
    fn key_value_errors() {
        for input in ["novalue", "", "=1"] {
            assert!(parse_key_value(input).is_err(), "{input}");
        }
    }

    #[test]
    fn merge_table() {
        let pairs = |ps: &[(&str, Value)]| -> Vec<(String, Value)> {
            ps.iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        };
        assert_eq!(merge_object(None, vec![]), None);
        assert_eq!(merge_object(Some(json!({})), vec![]), Some(json!({})));
        assert_eq!(
            merge_object(None, pairs(&[("a", json!(1)), ("a", json!(2))])),
            Some(json!({"a": 2}))
        );
        assert_eq!(
            merge_object(
                Some(json!({"a": 1, "b": {"c": 1}})),
                pairs(&[("b", json!("x"))])
            ),
            Some(json!({"a": 1, "b": "x"}))
        );
    }

    #[test]
    fn json_objects_inline_and_from_files() {
        assert_eq!(parse_json_object("{\"a\": 1}").unwrap(), json!({"a": 1}));
        for bad in ["[1]", "1", "\"s\"", "null", "{", ""] {
            assert!(parse_json_object(bad).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        std::fs::write(&path, "{\"cluster\": \"c\"}\n").unwrap();
        let arg = format!("@{}", path.display());
        assert_eq!(parse_json_object(&arg).unwrap(), json!({"cluster": "c"}));
        let e = parse_json_object(&format!("@{}", dir.path().join("nope").display())).unwrap_err();
        assert!(e.starts_with("cannot read"), "{e}");
    }

    #[test]
    fn concurrency_limits() {
        assert_eq!(parse_concurrency_limit("4"), Ok(ConcurrencyLimit(Some(4))));
        assert_eq!(parse_concurrency_limit("0"), Ok(ConcurrencyLimit(Some(0))));
        assert_eq!(parse_concurrency_limit("none"), Ok(ConcurrencyLimit(None)));
        assert_eq!(parse_concurrency_limit("NONE"), Ok(ConcurrencyLimit(None)));
        for bad in ["-1", "x", "", "1.5"] {
            assert!(parse_concurrency_limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_time("2024-05-01T14:00:00+02:00").unwrap(),
            "2024-05-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(parse_time("tomorrow").is_err());
    }
}

//! Canonical JSON: one byte string per value (object keys sorted by their UTF-8 bytes, no
//! whitespace, serde_json's escaping and number format), so that a hash over a value does not
//! depend on how a map happened to be ordered in memory (serde_json's `preserve_order` feature
//! may be switched on by any crate in a build).

use serde_json::Value;

/// `v` as canonical JSON text.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write(&mut out, v);
    out
}

fn write(out: &mut String, v: &Value) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write(out, v);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, v);
            }
            out.push(']');
        }
        Value::String(s) => write_string(out, s),
        // Scalars have one serialization already.
        other => out.push_str(&other.to_string()),
    }
}

fn write_string(out: &mut String, s: &str) {
    // serde_json escapes a string the same way whatever the map order feature.
    out.push_str(&Value::String(s.to_owned()).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_at_every_depth() {
        let cases = [
            (json!({"b": 1, "a": 2}), r#"{"a":2,"b":1}"#),
            (
                json!({"z": {"y": [3, {"d": null, "c": true}], "x": "s"}}),
                r#"{"z":{"x":"s","y":[3,{"c":true,"d":null}]}}"#,
            ),
            (json!("quote\"and\\slash\n"), r#""quote\"and\\slash\n""#),
            (json!([]), "[]"),
            (json!({}), "{}"),
            (json!(-1.5), "-1.5"),
            (json!({"é": 1, "e": 2}), r#"{"e":2,"é":1}"#),
        ];
        for (v, want) in cases {
            assert_eq!(canonical_json(&v), want);
        }
    }

    #[test]
    fn canonical_text_parses_back_to_the_same_value() {
        let v = json!({"k": [1, 2, {"x": "y"}], "a": null});
        let back: Value = serde_json::from_str(&canonical_json(&v)).unwrap_or_default();
        assert_eq!(back, v);
    }

    /// Floats read back as the double that was printed, so canonical text is a fixed point
    /// (needs serde_json's `float_roundtrip`; without it these land one ULP off: found by the
    /// `request_fields` and `flow_result` fuzz targets).
    #[test]
    fn floats_survive_the_round_trip() {
        for text in [
            r#"{"scratch_bytes":107374182733333333333}"#,
            "[123454789012345678901234567890]",
            "[0.1,5e-324,2.2250738585072014e-308,1.7976931348623157e308]",
        ] {
            let v: Value = serde_json::from_str(text).unwrap_or_default();
            let canonical = canonical_json(&v);
            let back: Value = serde_json::from_str(&canonical).unwrap_or_default();
            assert_eq!(back, v, "{text}");
            assert_eq!(canonical_json(&back), canonical, "{text}");
        }
    }
}

//! The Cloud Run Admin API v2 discovery document, loaded at run time: its methods (verb, path,
//! parameters, request and response schemas) and its schemas, and routing a request to a method.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Environment variable naming another discovery document to load instead of the default.
pub const DISCOVERY_ENV: &str = "FERRY_CLOUDRUN_DISCOVERY";

/// Why the discovery document could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading discovery document {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing discovery document {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("discovery document {path} is malformed: {what}")]
    Malformed { path: PathBuf, what: String },
}

/// The default document: `spec/run.v2.json` in this crate (Google's published discovery
/// document, kept as test data; see `spec/README.md`), unless `FERRY_CLOUDRUN_DISCOVERY` names
/// another file.
pub fn default_path() -> PathBuf {
    if let Some(p) = std::env::var_os(DISCOVERY_ENV) {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("spec/run.v2.json")
}

/// One query or path parameter of a method (or a global one).
#[derive(Debug, Clone)]
pub struct Parameter {
    pub name: String,
    pub location: String,
    /// `string`, `integer`, `boolean`, `number`.
    pub kind: String,
    pub format: Option<String>,
    pub enumeration: Option<Vec<String>>,
    pub repeated: bool,
    pub required: bool,
    /// The regular expression a path parameter must match (only `^lit[^/]+lit$` forms are used).
    pub pattern: Option<String>,
}

/// One REST method, e.g. `run.projects.locations.jobs.run`.
#[derive(Debug, Clone)]
pub struct Method {
    /// The id without the `run.` prefix: `projects.locations.jobs.run`.
    pub id: String,
    pub http_method: String,
    /// Segments of `flatPath`, e.g. `["v2", "projects", "{projectsId}", ..., "{jobsId}"]`.
    flat_segments: Vec<String>,
    /// The custom verb after the last `:` of `flatPath` (`run`, `cancel`, ...).
    pub custom_verb: Option<String>,
    /// `path`, e.g. `v2/{+name}:run` or `v2/{+parent}/jobs`.
    pub path: String,
    pub parameters: BTreeMap<String, Parameter>,
    pub request: Option<String>,
    pub response: Option<String>,
}

/// A method matched to a request, with its path parameter (`name`, `parent` or `resource`).
#[derive(Debug, Clone)]
pub struct Route<'a> {
    pub method: &'a Method,
    /// The path parameter's name and value: `("name", "projects/p/locations/l/jobs/j")`.
    pub path_param: Option<(String, String)>,
}

/// The parsed document.
#[derive(Debug)]
pub struct Discovery {
    pub root_url: String,
    pub service_path: String,
    pub methods: Vec<Method>,
    pub global_parameters: BTreeMap<String, Parameter>,
    pub schemas: serde_json::Map<String, Value>,
}

impl Discovery {
    /// Loads the document at `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let doc: Value = serde_json::from_str(&text).map_err(|source| Error::Parse {
            path: path.to_owned(),
            source,
        })?;
        Self::from_value(&doc).map_err(|what| Error::Malformed {
            path: path.to_owned(),
            what,
        })
    }

    fn from_value(doc: &Value) -> Result<Self, String> {
        let text = |k: &str| {
            doc.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("no `{k}`"))
        };
        let schemas = doc
            .get("schemas")
            .and_then(Value::as_object)
            .cloned()
            .ok_or("no `schemas`")?;
        let mut methods = Vec::new();
        if let Some(resources) = doc.get("resources").and_then(Value::as_object) {
            collect_methods(resources, &mut methods)?;
        }
        if methods.is_empty() {
            return Err("no methods under `resources`".into());
        }
        Ok(Self {
            root_url: text("rootUrl")?,
            service_path: doc
                .get("servicePath")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            methods,
            global_parameters: parse_parameters(doc.get("parameters")),
            schemas,
        })
    }

    /// A method by id (`projects.locations.jobs.create`).
    pub fn method(&self, id: &str) -> Option<&Method> {
        self.methods.iter().find(|m| m.id == id)
    }

    /// The methods whose path matches `path` (any verb), most specific first.
    fn path_matches(&self, path: &str) -> Vec<(&Method, usize)> {
        let path = path.trim_start_matches('/');
        let sp = self.service_path.trim_matches('/');
        // `servicePath` is empty for run.v2 (paths carry `v2/` themselves); honour it if not.
        let path = if sp.is_empty() {
            path
        } else {
            match path.strip_prefix(sp) {
                Some(rest) => rest.trim_start_matches('/'),
                None => return Vec::new(),
            }
        };
        let mut found: Vec<(&Method, usize)> = self
            .methods
            .iter()
            .filter_map(|m| m.match_path(path).map(|score| (m, score)))
            .collect();
        found.sort_by_key(|m| std::cmp::Reverse(m.1));
        found
    }

    /// Routes a request: `Ok` with the method, `Err(true)` if the path exists under another
    /// verb, `Err(false)` if no method has this path.
    pub fn route(&self, http_method: &str, path: &str) -> Result<Route<'_>, bool> {
        let matches = self.path_matches(path);
        let Some((method, _)) = matches
            .iter()
            .find(|(m, _)| m.http_method.eq_ignore_ascii_case(http_method))
        else {
            return Err(!matches.is_empty());
        };
        let path_param = method.path_param_value(path.trim_start_matches('/'));
        Ok(Route { method, path_param })
    }
}

fn collect_methods(
    resources: &serde_json::Map<String, Value>,
    out: &mut Vec<Method>,
) -> Result<(), String> {
    for resource in resources.values() {
        if let Some(methods) = resource.get("methods").and_then(Value::as_object) {
            for m in methods.values() {
                out.push(Method::from_value(m)?);
            }
        }
        if let Some(nested) = resource.get("resources").and_then(Value::as_object) {
            collect_methods(nested, out)?;
        }
    }
    Ok(())
}

fn parse_parameters(v: Option<&Value>) -> BTreeMap<String, Parameter> {
    let mut out = BTreeMap::new();
    let Some(map) = v.and_then(Value::as_object) else {
        return out;
    };
    for (name, p) in map {
        let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_owned);
        let b = |k: &str| p.get(k).and_then(Value::as_bool).unwrap_or(false);
        out.insert(
            name.clone(),
            Parameter {
                name: name.clone(),
                location: s("location").unwrap_or_else(|| "query".into()),
                kind: s("type").unwrap_or_else(|| "string".into()),
                format: s("format"),
                enumeration: p.get("enum").and_then(Value::as_array).map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                }),
                repeated: b("repeated"),
                required: b("required"),
                pattern: s("pattern"),
            },
        );
    }
    out
}

impl Method {
    fn from_value(m: &Value) -> Result<Self, String> {
        let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
        let id = s("id").ok_or("a method without `id`")?;
        let flat = s("flatPath")
            .or_else(|| s("path"))
            .ok_or_else(|| format!("method {id} has no path"))?;
        let (flat, custom_verb) = split_verb(&flat);
        let schema_ref = |k: &str| {
            m.get(k)
                .and_then(|r| r.get("$ref"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Ok(Self {
            id: id.strip_prefix("run.").unwrap_or(&id).to_owned(),
            http_method: s("httpMethod").unwrap_or_else(|| "GET".into()),
            flat_segments: flat.split('/').map(str::to_owned).collect(),
            custom_verb,
            path: s("path").unwrap_or_default(),
            parameters: parse_parameters(m.get("parameters")),
            request: schema_ref("request"),
            response: schema_ref("response"),
        })
    }

    /// Matches a path (without leading `/`); the score prefers literal segments and custom verbs.
    fn match_path(&self, path: &str) -> Option<usize> {
        let (path, verb) = split_verb(path);
        if verb != self.custom_verb {
            return None;
        }
        let segments: Vec<&str> = path.split('/').collect();
        if segments.len() != self.flat_segments.len() {
            return None;
        }
        let mut score = usize::from(verb.is_some()) * 1000;
        for (tpl, seg) in self.flat_segments.iter().zip(&segments) {
            if tpl.starts_with('{') {
                if seg.is_empty() {
                    return None;
                }
            } else if tpl == seg {
                score += 1;
            } else {
                return None;
            }
        }
        Some(score)
    }

    /// The value of the `{+name}`-style path parameter, cut out of the request path.
    fn path_param_value(&self, path: &str) -> Option<(String, String)> {
        let (path, _) = split_verb(path);
        let (tpl, _) = split_verb(&self.path);
        let open = tpl.find("{+").or_else(|| tpl.find('{'))?;
        let close = open + tpl[open..].find('}')?;
        let name = tpl[open..close]
            .trim_start_matches('{')
            .trim_start_matches('+');
        let prefix = &tpl[..open];
        let suffix = &tpl[close + 1..];
        let value = path.strip_prefix(prefix)?.strip_suffix(suffix)?;
        Some((name.to_owned(), percent_decode(value)))
    }
}

/// Splits `a/b/c:verb` into (`a/b/c`, `Some("verb")`); a `:` before the last `/` is not a verb.
fn split_verb(path: &str) -> (String, Option<String>) {
    let last_slash = path.rfind('/').map_or(0, |i| i + 1);
    match path[last_slash..].rfind(':') {
        Some(i) => (
            path[..last_slash + i].to_owned(),
            Some(path[last_slash + i + 1..].to_owned()),
        ),
        None => (path.to_owned(), None),
    }
}

/// Decodes `%XX` escapes (path segments and query values).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() && s.is_char_boundary(i + 3) {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `value` matches a discovery `pattern` of the form `^lit[^/]+lit...$` (the only form
/// run.v2 uses); another form is accepted unchecked.
pub fn matches_pattern(pattern: &str, value: &str) -> bool {
    let Some(body) = pattern.strip_prefix('^').and_then(|p| p.strip_suffix('$')) else {
        return true;
    };
    let parts: Vec<&str> = body.split("[^/]+").collect();
    if parts
        .iter()
        .any(|p| p.contains(['[', ']', '(', ')', '*', '+', '?', '|', '\\', '.']))
    {
        return true;
    }
    let mut rest = value;
    for (i, lit) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(lit) {
                Some(r) => rest = r,
                None => return false,
            }
            continue;
        }
        // A `[^/]+` run before this literal: at least one non-slash char, then the literal.
        let wildcard_end = if lit.is_empty() {
            if i == parts.len() - 1 {
                rest.len()
            } else {
                return true;
            }
        } else {
            match rest.find(lit) {
                Some(j) => j,
                None => return false,
            }
        };
        let run = &rest[..wildcard_end];
        if run.is_empty() || run.contains('/') {
            return false;
        }
        rest = &rest[wildcard_end + lit.len()..];
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_verb_cases() {
        assert_eq!(
            split_verb("v2/a/b:run"),
            ("v2/a/b".into(), Some("run".into()))
        );
        assert_eq!(split_verb("v2/a/b"), ("v2/a/b".into(), None));
        assert_eq!(split_verb("v2/a:x/b"), ("v2/a:x/b".into(), None));
    }

    #[test]
    fn pattern_cases() {
        let p = "^projects/[^/]+/locations/[^/]+/jobs/[^/]+$";
        assert!(matches_pattern(p, "projects/p/locations/l/jobs/j"));
        assert!(!matches_pattern(p, "projects/p/locations/l/jobs/"));
        assert!(!matches_pattern(p, "projects/p/locations/l/jobs/j/x"));
        assert!(!matches_pattern(p, "projects/p/locations/l/services/j"));
        assert!(matches_pattern("^projects/[^/]+$", "projects/p"));
    }

    #[test]
    fn percent_decode_cases() {
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("a%"), "a%");
        assert_eq!(percent_decode("plain"), "plain");
    }
}

//! Names that users choose (workspaces, pools, secrets, credentials) and idempotency keys,
//! parsed once at the edge.

use std::fmt;

/// Why a name was refused; the message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters long (got {len})")]
    TooLong { max: usize, len: usize },
    #[error("may contain only lowercase letters a-z, digits 0-9 and '-', and must start with a letter or digit (found {found:?})")]
    BadCharacter { found: char },
    #[error("must not end with '-'")]
    TrailingDash,
    #[error("may contain only printable ASCII characters, without spaces (found {found:?})")]
    NotPrintable { found: char },
}

/// A user-chosen resource name: 1 to 63 characters of `[a-z0-9-]`, starting with a letter or
/// digit and not ending with '-' (the DNS label rule, so a name is safe in a URL path, a Cloud
/// Run job name or an ECS task-definition family).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub const MAX_LEN: usize = 63;

    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        let len = s.chars().count();
        if len > Self::MAX_LEN {
            return Err(NameError::TooLong {
                max: Self::MAX_LEN,
                len,
            });
        }
        for (i, c) in s.chars().enumerate() {
            let ok = c.is_ascii_lowercase() || c.is_ascii_digit() || (c == '-' && i > 0);
            if !ok {
                return Err(NameError::BadCharacter { found: c });
            }
        }
        if s.ends_with('-') {
            return Err(NameError::TrailingDash);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> serde::Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Name::parse(&s).map_err(|e| serde::de::Error::custom(format!("invalid name {s:?}: {e}")))
    }
}

/// A client-chosen key that makes a run submission idempotent within a workspace:
/// 1 to 255 printable ASCII characters.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(NameError::TooLong {
                max: Self::MAX_LEN,
                len: s.len(),
            });
        }
        if let Some(c) = s.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(NameError::NotPrintable { found: c });
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> serde::Deserialize<'de> for IdempotencyKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        IdempotencyKey::parse(&s)
            .map_err(|e| serde::de::Error::custom(format!("invalid idempotency key: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let cases: &[(&str, bool)] = &[
            ("a", true),
            ("acme", true),
            ("prod-ecs-2", true),
            ("0pool", true),
            ("", false),
            ("-a", false),
            ("a-", false),
            ("Acme", false),
            ("a_b", false),
            ("a b", false),
            ("a/b", false),
            ("..", false),
            ("é", false),
        ];
        for (s, ok) in cases {
            assert_eq!(Name::parse(s).is_ok(), *ok, "{s:?}");
        }
        assert_eq!(
            Name::parse(&"a".repeat(63)).map(|n| n.as_str().len()),
            Ok(63)
        );
        assert_eq!(
            Name::parse(&"a".repeat(64)),
            Err(NameError::TooLong { max: 63, len: 64 })
        );
    }

    #[test]
    fn idempotency_keys() {
        assert!(IdempotencyKey::parse("order-42/retry:1").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert_eq!(
            IdempotencyKey::parse("has space"),
            Err(NameError::NotPrintable { found: ' ' })
        );
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }
}

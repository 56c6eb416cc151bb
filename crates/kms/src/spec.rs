//! The root-key setting for a KMS backend, parsed: `aws-kms:<key id, key ARN, alias or alias
//! ARN>` or `gcp-kms:projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>`.

use crate::{Error, AWS_PREFIX, GCP_PREFIX};

/// Which KMS key wraps workspace keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySpec {
    Aws(AwsKey),
    Gcp(CryptoKeyName),
}

impl KeySpec {
    /// Parses `aws-kms:…` or `gcp-kms:…`.
    pub fn parse(s: &str) -> Result<KeySpec, Error> {
        if let Some(rest) = s.strip_prefix(AWS_PREFIX) {
            AwsKey::parse(rest).map(KeySpec::Aws)
        } else if let Some(rest) = s.strip_prefix(GCP_PREFIX) {
            CryptoKeyName::parse(rest).map(KeySpec::Gcp)
        } else {
            Err(parse_error(
                s,
                "expected local, aws-kms:<key id, ARN or alias> or \
                 gcp-kms:projects/<project>/locations/<location>/keyRings/<ring>/cryptoKeys/<key>",
            ))
        }
    }
}

impl std::fmt::Display for KeySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySpec::Aws(k) => write!(f, "{AWS_PREFIX}{k}"),
            KeySpec::Gcp(k) => write!(f, "{GCP_PREFIX}{k}"),
        }
    }
}

fn parse_error(value: &str, reason: &'static str) -> Error {
    Error::Parse {
        value: value.to_owned(),
        reason,
    }
}

/// An AWS KMS key as KMS accepts it in `Encrypt`: a key id, a key ARN, `alias/<name>` or an
/// alias ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsKey(String);

impl AwsKey {
    pub fn parse(s: &str) -> Result<AwsKey, Error> {
        let full = || format!("{AWS_PREFIX}{s}");
        if s.is_empty() {
            return Err(parse_error(
                &full(),
                "the KMS key id, ARN or alias is missing",
            ));
        }
        if s.len() > 2048 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(parse_error(
                &full(),
                "a KMS key id, ARN or alias has no spaces or control characters",
            ));
        }
        if s.starts_with("arn:") {
            let parts: Vec<&str> = s.splitn(6, ':').collect();
            let ok = parts.len() == 6
                && parts[2] == "kms"
                && !parts[3].is_empty()
                && (parts[5].starts_with("key/") || parts[5].starts_with("alias/"));
            if !ok {
                return Err(parse_error(
                    &full(),
                    "a KMS ARN looks like arn:aws:kms:<region>:<account>:key/<id> or …:alias/<name>",
                ));
            }
        }
        Ok(AwsKey(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The region in an ARN, if this is one.
    pub fn region(&self) -> Option<&str> {
        arn_region(&self.0)
    }
}

/// The region of a KMS ARN (`arn:<partition>:kms:<region>:…`).
pub(crate) fn arn_region(s: &str) -> Option<&str> {
    let mut parts = s.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_), Some("kms"), Some(region)) if !region.is_empty() => Some(region),
        _ => None,
    }
}

impl std::fmt::Display for AwsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Cloud KMS CryptoKey: `projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>` (not a
/// version: decrypt picks the version from the ciphertext).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoKeyName(String);

impl CryptoKeyName {
    pub fn parse(s: &str) -> Result<CryptoKeyName, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        let labels = ["projects", "locations", "keyRings", "cryptoKeys"];
        let ok = parts.len() == 8
            && parts.chunks(2).zip(labels).all(|(pair, label)| {
                pair[0] == label
                    && !pair[1].is_empty()
                    && pair[1]
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            });
        if !ok {
            return Err(parse_error(
                &format!("{GCP_PREFIX}{s}"),
                "a Cloud KMS key looks like \
                 projects/<project>/locations/<location>/keyRings/<ring>/cryptoKeys/<key>",
            ));
        }
        Ok(CryptoKeyName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CryptoKeyName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> bool {
        KeySpec::parse(s).is_ok()
    }

    #[test]
    fn aws_keys() {
        assert!(ok("aws-kms:1234abcd-12ab-34cd-56ef-1234567890ab"));
        assert!(ok("aws-kms:alias/ferry-root"));
        assert!(ok(
            "aws-kms:arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        ));
        assert!(ok("aws-kms:arn:aws:kms:eu-west-1:111122223333:alias/ferry"));
        assert!(!ok("aws-kms:"));
        assert!(!ok("aws-kms:alias/with space"));
        assert!(!ok("aws-kms:arn:aws:s3:::bucket"));
        assert!(!ok("aws-kms:arn:aws:kms::111122223333:key/x"));
    }

    #[test]
    fn aws_regions_come_from_arns() {
        let key = |s: &str| AwsKey::parse(s).ok();
        assert_eq!(
            key("arn:aws:kms:eu-west-1:1:key/x")
                .as_ref()
                .and_then(AwsKey::region),
            Some("eu-west-1")
        );
        assert_eq!(key("alias/x").as_ref().and_then(AwsKey::region), None);
    }

    #[test]
    fn gcp_keys() {
        assert!(ok(
            "gcp-kms:projects/p-1/locations/europe-west1/keyRings/ferry/cryptoKeys/root"
        ));
        assert!(!ok("gcp-kms:projects/p/locations/l/keyRings/r"));
        assert!(!ok(
            "gcp-kms:projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1"
        ));
        assert!(!ok("gcp-kms:projects/p/locations/l/keyRings//cryptoKeys/k"));
        assert!(!ok(
            "gcp-kms:projects/p/locations/l/keyrings/r/cryptoKeys/k"
        ));
        assert!(!ok(
            "gcp-kms:projects/p/locations/l/keyRings/r/cryptoKeys/k?x"
        ));
    }

    #[test]
    fn other_backends_are_refused_with_the_choices() {
        let e = KeySpec::parse("vault:transit/ferry")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("aws-kms:") && e.contains("gcp-kms:"), "{e}");
    }

    #[test]
    fn specs_print_as_given() {
        for s in [
            "aws-kms:alias/ferry",
            "gcp-kms:projects/p/locations/l/keyRings/r/cryptoKeys/k",
        ] {
            assert_eq!(
                KeySpec::parse(s).map(|k| k.to_string()).ok().as_deref(),
                Some(s)
            );
        }
    }
}

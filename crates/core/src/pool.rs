//! Pools: where runs go, and the limits a pool sets for its runs.

use std::fmt;

/// How a pool executes its runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum PoolType {
    /// WebAssembly flows in Ferry's own sandboxes.
    #[serde(rename = "managed")]
    Managed,
    /// Google Cloud Run job executions in the customer's project.
    #[serde(rename = "cloud-run")]
    CloudRun,
    /// AWS ECS tasks in the customer's account.
    #[serde(rename = "ecs")]
    Ecs,
}

impl PoolType {
    pub const ALL: [PoolType; 3] = [PoolType::Managed, PoolType::CloudRun, PoolType::Ecs];

    pub fn as_str(self) -> &'static str {
        match self {
            PoolType::Managed => "managed",
            PoolType::CloudRun => "cloud-run",
            PoolType::Ecs => "ecs",
        }
    }

    pub fn parse(s: &str) -> Option<PoolType> {
        PoolType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether runs of this type are pushed into a customer's cloud (and so need a credential).
    pub fn is_push(self) -> bool {
        !matches!(self, PoolType::Managed)
    }
}

impl fmt::Display for PoolType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limits a pool imposes on each of its runs. A run may lower them, never raise them.
/// Absent fields mean the built-in default ([`PoolLimits::DEFAULT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolLimits {
    /// Linear memory a flow may use, in MiB (managed pools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    /// Wall-clock time an attempt may take, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    /// Instructions a flow may execute, in millions of fuel units (managed; off unless set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_fuel_m: Option<u64>,
    /// Bytes of log a run may keep; past this the log is marked truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_bytes: Option<u64>,
    /// Bytes a flow may write to its scratch directory (managed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch_bytes: Option<u64>,
}

/// A limit that is out of its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be between {min} and {max} (got {got})")]
pub struct LimitError {
    pub field: &'static str,
    pub min: u64,
    pub max: u64,
    pub got: u64,
}

/// A run asked for more than its pool allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {got} exceeds the pool's limit of {max}; a run may only lower a pool's limits")]
pub struct LimitRaised {
    pub field: &'static str,
    pub max: u64,
    pub got: u64,
}

impl PoolLimits {
    /// What applies where neither pool nor run says otherwise.
    pub const DEFAULT: PoolLimits = PoolLimits {
        memory_mb: Some(128),
        timeout_s: Some(3600),
        cpu_fuel_m: None,
        log_bytes: Some(1024 * 1024),
        scratch_bytes: Some(16 * 1024 * 1024),
    };

    const RANGES: [(&'static str, u64, u64); 5] = [
        ("memory_mb", 1, 4096),
        ("timeout_s", 1, 7 * 24 * 3600),
        ("cpu_fuel_m", 1, 1_000_000_000),
        ("log_bytes", 0, 1 << 30),
        ("scratch_bytes", 0, 1 << 32),
    ];

    fn fields(&self) -> [Option<u64>; 5] {
        [
            self.memory_mb.map(u64::from),
            self.timeout_s.map(u64::from),
            self.cpu_fuel_m,
            self.log_bytes,
            self.scratch_bytes,
        ]
    }

    /// Checks every set limit is within its range.
    pub fn validate(&self) -> Result<(), LimitError> {
        for ((field, min, max), v) in Self::RANGES.iter().zip(self.fields()) {
            if let Some(got) = v {
                if got < *min || got > *max {
                    return Err(LimitError {
                        field,
                        min: *min,
                        max: *max,
                        got,
                    });
                }
            }
        }
        Ok(())
    }

    /// This pool's limits with the defaults filled in.
    pub fn effective(&self) -> PoolLimits {
        let d = Self::DEFAULT;
        PoolLimits {
            memory_mb: self.memory_mb.or(d.memory_mb),
            timeout_s: self.timeout_s.or(d.timeout_s),
            cpu_fuel_m: self.cpu_fuel_m.or(d.cpu_fuel_m),
            log_bytes: self.log_bytes.or(d.log_bytes),
            scratch_bytes: self.scratch_bytes.or(d.scratch_bytes),
        }
    }

    /// The limits for one run: the pool's (with defaults) lowered by what the run asks for.
    /// Asking for more than the pool allows is an error, not a silent clamp.
    pub fn narrowed_by(&self, run: &PoolLimits) -> Result<PoolLimits, LimitRaised> {
        let pool = self.effective();
        let mut out = pool;
        let pairs: [(&'static str, Option<u64>, Option<u64>); 5] = [
            (
                "memory_mb",
                pool.memory_mb.map(u64::from),
                run.memory_mb.map(u64::from),
            ),
            (
                "timeout_s",
                pool.timeout_s.map(u64::from),
                run.timeout_s.map(u64::from),
            ),
            ("cpu_fuel_m", pool.cpu_fuel_m, run.cpu_fuel_m),
            ("log_bytes", pool.log_bytes, run.log_bytes),
            ("scratch_bytes", pool.scratch_bytes, run.scratch_bytes),
        ];
        for (field, max, got) in pairs {
            if let (Some(max), Some(got)) = (max, got) {
                if got > max {
                    return Err(LimitRaised { field, max, got });
                }
            }
        }
        out.memory_mb = run.memory_mb.or(out.memory_mb);
        out.timeout_s = run.timeout_s.or(out.timeout_s);
        out.cpu_fuel_m = run.cpu_fuel_m.or(out.cpu_fuel_m);
        out.log_bytes = run.log_bytes.or(out.log_bytes);
        out.scratch_bytes = run.scratch_bytes.or(out.scratch_bytes);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_types_round_trip() {
        for t in PoolType::ALL {
            assert_eq!(PoolType::parse(t.as_str()), Some(t));
            let json = serde_json::to_string(&t).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        assert_eq!(PoolType::parse("kubernetes"), None);
        assert!(!PoolType::Managed.is_push());
        assert!(PoolType::Ecs.is_push() && PoolType::CloudRun.is_push());
    }

    #[test]
    fn limits_validate_ranges() {
        let ok = PoolLimits {
            memory_mb: Some(64),
            timeout_s: Some(30),
            ..Default::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        let zero_mem = PoolLimits {
            memory_mb: Some(0),
            ..Default::default()
        };
        assert_eq!(zero_mem.validate().map_err(|e| e.field), Err("memory_mb"));
        let huge_timeout = PoolLimits {
            timeout_s: Some(u32::MAX),
            ..Default::default()
        };
        assert_eq!(
            huge_timeout.validate().map_err(|e| e.field),
            Err("timeout_s")
        );
    }

    #[test]
    fn a_run_may_lower_but_not_raise_limits() {
        let pool = PoolLimits {
            memory_mb: Some(64),
            timeout_s: Some(30),
            ..Default::default()
        };
        let lower = PoolLimits {
            timeout_s: Some(10),
            ..Default::default()
        };
        let eff = pool.narrowed_by(&lower);
        assert_eq!(
            eff.map(|l| (l.memory_mb, l.timeout_s)),
            Ok((Some(64), Some(10)))
        );
        let higher = PoolLimits {
            memory_mb: Some(65),
            ..Default::default()
        };
        assert_eq!(
            pool.narrowed_by(&higher).map_err(|e| e.field),
            Err("memory_mb")
        );
        // Defaults are ceilings too.
        let above_default = PoolLimits {
            memory_mb: Some(4096),
            ..Default::default()
        };
        assert!(PoolLimits::default().narrowed_by(&above_default).is_err());
    }

    #[test]
    fn unknown_limit_fields_are_refused() {
        let r: Result<PoolLimits, _> = serde_json::from_str(r#"{"memory":64}"#);
        assert!(r.is_err());
    }
}

/// One thing wrong with a push pool's job template or a run's job variables: which field, and
/// what to fix. The server answers 422 with these before anything reaches a cloud.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// What [`FieldError::missing`] says; other "is required ..." messages count as missing.
    pub const MISSING: &'static str = "is required";

    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// A required field nobody set.
    pub fn missing(field: &str) -> Self {
        Self::new(field, Self::MISSING)
    }

    /// Whether the field is only missing (a pool's template may leave it to its runs).
    pub fn is_missing(&self) -> bool {
        self.message.starts_with(Self::MISSING)
    }
}

//! `cloud_run_spec`: a cloud-run pool's job template and a run's job variables checked into a
//! `CloudRunJobSpec` (`ferry_push_gcp::spec_for`, crates/push-gcp/src/spec.rs), which the
//! server calls at pool creation and at submit (422s) and the backend before every call to
//! Google.
//!
//! Input: the template's JSON on the first line, the variables' JSON on the rest (blank: null).
//!
//! Properties: the answer is deterministic; refusals name at least one field; a run that names
//! `endpoint` is refused; an accepted spec keeps every promise of the checks (below), with its
//! endpoint from the template alone; and the job id is a valid Cloud Run job id for any pool
//! name, the same for every per-run value and another for what the job holds.

use serde_json::Value;

use super::parsers::cloud_run_spec::{spec_for, CloudRunJobSpec, Vpc, MAX_TIMEOUT_S};

pub fn check(data: &[u8]) {
    let Some((template, variables)) = super::corpus::two_json(data) else {
        return;
    };
    let result = spec_for(&template, &variables);
    assert_eq!(result, spec_for(&template, &variables), "not deterministic");
    if variables.get("endpoint").is_some() {
        let errors = result.as_ref().err();
        assert!(
            errors.is_some_and(|e| e.iter().any(|e| e.field == "endpoint")),
            "a run set the endpoint: {result:?}"
        );
    }
    match result {
        Err(errors) => assert!(!errors.is_empty(), "refused without a reason"),
        Ok(spec) => accepted(&spec, &template, data),
    }
}

fn env_name_ok(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 255
        && !k.contains('=')
        && !k.starts_with("FERRY_")
        && !k.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn accepted(s: &CloudRunJobSpec, template: &Value, data: &[u8]) {
    let p = s.project.as_bytes();
    assert!(
        (6..=30).contains(&p.len())
            && p[0].is_ascii_lowercase()
            && p.iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && !s.project.ends_with('-'),
        "project {:?}",
        s.project
    );
    assert!(
        !s.region.is_empty()
            && s.region.len() <= 30
            && s.region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "region {:?}",
        s.region
    );
    assert!(
        !s.image.is_empty() && s.image.len() <= 1024 && !s.image.chars().any(char::is_whitespace),
        "image {:?}",
        s.image
    );
    let millis = match s.cpu.strip_suffix('m') {
        Some(m) => m.parse::<u32>().ok().filter(|m| (80..1000).contains(m)),
        None => ["1", "2", "4", "6", "8"]
            .contains(&s.cpu.as_str())
            .then(|| s.cpu.parse::<u32>().unwrap_or(0) * 1000),
    };
    let Some(millis) = millis else {
        panic!("cpu {:?} is not what Cloud Run takes", s.cpu)
    };
    assert!(
        (512..=32 * 1024).contains(&s.memory_mib),
        "memory {} MiB",
        s.memory_mib
    );
    // Cloud Run's pairings, for what the job gets (defaults included).
    let (min_mib, max_mib) = match millis {
        m if m < 500 => (0, 512),
        m if m < 1000 => (0, 1024),
        1000 => (0, 4096),
        2000 => (0, 8192),
        4000 => (2048, 16384),
        6000 => (4096, 24576),
        _ => (4096, 32768),
    };
    assert!(
        (min_mib..=max_mib).contains(&s.memory_mib),
        "{} MiB with cpu {}",
        s.memory_mib,
        s.cpu
    );
    assert_eq!(s.memory(), format!("{}Mi", s.memory_mib));
    if let Some(t) = s.timeout_s {
        assert!((1..=MAX_TIMEOUT_S).contains(&t), "timeout {t}");
    }
    assert!(s.max_retries <= 10, "max_retries {}", s.max_retries);
    for k in s.env.keys() {
        assert!(env_name_ok(k), "env {k:?}");
    }
    for (k, r) in &s.env_from_secrets {
        assert!(env_name_ok(k) && !s.env.contains_key(k), "secret env {k:?}");
        assert!(
            r.version == "latest"
                || (!r.version.is_empty()
                    && r.version.len() <= 10
                    && r.version.bytes().all(|b| b.is_ascii_digit())),
            "secret version {:?}",
            r.version
        );
        let parts: Vec<&str> = r.secret.split('/').collect();
        assert!(
            matches!(parts.as_slice(), ["projects", p, "secrets", id] if !p.is_empty() && !id.is_empty())
                || matches!(parts.as_slice(), [id] if !id.is_empty()),
            "secret {:?}",
            r.secret
        );
    }
    if let Some(sa) = &s.service_account {
        assert!(
            sa.contains('@') && sa.ends_with("gserviceaccount.com"),
            "service account {sa:?}"
        );
    }
    if let Some(Vpc::Direct {
        network,
        subnetwork,
        ..
    }) = &s.vpc
    {
        assert!(
            network.is_some() || subnetwork.is_some(),
            "direct VPC without a network"
        );
    }
    assert!(s.labels.len() <= 61, "{} labels", s.labels.len());
    for (k, v) in &s.labels {
        assert!(
            !k.starts_with("ferry")
                && (1..=63).contains(&k.len())
                && k.as_bytes()[0].is_ascii_lowercase()
                && v.len() <= 63
                && k.bytes().chain(v.bytes()).all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'-'
                    || b == b'_'),
            "label {k:?}={v:?}"
        );
    }
    if let Some(e) = &s.endpoint {
        assert!(ferry_core::Origin::parse(e).is_ok(), "endpoint {e:?}");
        assert_eq!(
            template.get("endpoint").and_then(Value::as_str),
            Some(e.as_str())
        );
    }
    assert_eq!(
        s.location(),
        format!("projects/{}/locations/{}", s.project, s.region)
    );

    // Job ids: for any pool name (here: the input's own text), what Cloud Run takes.
    let pool_name = String::from_utf8_lossy(&data[..data.len().min(80)]).into_owned();
    let id = s.job_id("ws-1", "pool-1", &pool_name);
    let b = id.as_bytes();
    assert!(
        id.starts_with("ferry-")
            && id.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && !id.ends_with('-'),
        "job id {id:?}"
    );
    // The same job for every per-run value; another for what the job holds, and for another
    // pool.
    let mut per_run = s.clone();
    per_run.args.push("--per-run".into());
    per_run.env.insert("PER_RUN".into(), "1".into());
    per_run.timeout_s = Some(per_run.timeout_s.map_or(1, |t| t % MAX_TIMEOUT_S + 1));
    assert_eq!(
        per_run.job_id("ws-1", "pool-1", &pool_name),
        id,
        "a per-run value changed the job"
    );
    let mut other = s.clone();
    other.image.push_str("-other");
    assert_ne!(
        other.job_id("ws-1", "pool-1", &pool_name),
        id,
        "the image is not in the job"
    );
    let mut other = s.clone();
    other.command.push("--other".into());
    assert_ne!(
        other.job_id("ws-1", "pool-1", &pool_name),
        id,
        "the command is not in the job"
    );
    assert_ne!(
        s.job_id("ws-1", "pool-2", &pool_name),
        id,
        "two pools share a job"
    );
    assert_ne!(
        s.job_id("ws-2", "pool-1", &pool_name),
        id,
        "two workspaces share a job"
    );
}

//! `ecs_spec`: an ecs pool's job template and a run's job variables checked into an
//! `EcsJobSpec` (`ferry_push_aws::spec_for`, crates/push-aws/src/spec.rs), which the server
//! calls at pool creation and at submit (422s) and the backend before every AWS call.
//!
//! Input: the template's JSON on the first line, the variables' JSON on the rest (blank: null).
//!
//! Properties: the answer is deterministic; refusals name at least one field; a run that names
//! `endpoint` is refused; and an accepted spec keeps every promise of the checks (below),
//! with its endpoint from the template alone and a task-definition family that covers what
//! the task definition holds and nothing a run may change per run.

use serde_json::Value;

use super::parsers::ecs_spec::{spec_for, Capacity, EcsJobSpec};

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
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without a reason");
        }
        Ok(spec) => accepted(&spec, &template),
    }
}

fn accepted(s: &EcsJobSpec, template: &Value) {
    let arn_ok = |a: &str| a.starts_with("arn:") && a.contains(":iam::") && a.contains(":role/");
    assert!(
        !s.image.is_empty() && s.image.len() <= 1024 && !s.image.chars().any(char::is_whitespace),
        "image {:?}",
        s.image
    );
    assert!(!s.cluster.is_empty(), "an empty cluster");
    if let Some(r) = &s.region {
        assert!(
            (4..=25).contains(&r.len())
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "region {r:?}"
        );
    }
    assert!(
        (1..=16).contains(&s.subnets.len()) && s.subnets.iter().all(|x| x.starts_with("subnet-")),
        "subnets {:?}",
        s.subnets
    );
    assert!(
        s.security_groups.len() <= 5 && s.security_groups.iter().all(|x| x.starts_with("sg-")),
        "security groups {:?}",
        s.security_groups
    );
    for k in s.env.keys() {
        assert!(
            !k.is_empty() && !k.contains('=') && !k.starts_with("FERRY_"),
            "env {k:?}"
        );
    }
    for (k, arn) in &s.secrets {
        assert!(
            !k.starts_with("FERRY_") && !s.env.contains_key(k),
            "secret {k:?} shadows env"
        );
        assert!(
            arn.starts_with("arn:") && (arn.contains(":secretsmanager:") || arn.contains(":ssm:")),
            "secret {k:?} is not an ARN: the value itself would reach the task definition"
        );
    }
    if !s.secrets.is_empty() || s.log_group.is_some() {
        assert!(
            s.execution_role_arn.is_some(),
            "secrets or logs without an execution role"
        );
    }
    for arn in [&s.task_role_arn, &s.execution_role_arn]
        .into_iter()
        .flatten()
    {
        assert!(arn_ok(arn), "role {arn:?}");
    }
    assert!(s.tags.len() <= 40, "{} tags", s.tags.len());
    for (k, v) in &s.tags {
        let lower = k.to_ascii_lowercase();
        assert!(
            !lower.starts_with("ferry:") && !lower.starts_with("aws:"),
            "reserved tag {k:?}"
        );
        assert!(
            (1..=128).contains(&k.chars().count()) && v.chars().count() <= 256,
            "tag {k:?}"
        );
    }
    if let Some(g) = &s.log_group {
        assert!(
            !g.is_empty()
                && g.len() <= 512
                && g.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-/.#".contains(c)),
            "log group {g:?}"
        );
    }
    assert!(
        s.cpu > 0 && s.memory >= 6,
        "cpu {} memory {}",
        s.cpu,
        s.memory
    );
    match &s.capacity {
        Capacity::LaunchType(t) => {
            assert!(
                ["FARGATE", "EC2", "EXTERNAL"].contains(&t.as_str()),
                "launch type {t:?}"
            )
        }
        Capacity::Strategy(items) => {
            assert!((1..=20).contains(&items.len()), "{} providers", items.len());
            for i in items {
                assert!(
                    !i.capacity_provider.is_empty() && i.weight <= 1000 && i.base <= 100_000,
                    "provider {i:?}"
                );
            }
        }
    }
    if s.capacity.is_fargate() {
        assert!(
            [256, 512, 1024, 2048, 4096, 8192, 16384].contains(&s.cpu)
                && (s.memory % 1024 == 0 || (s.cpu == 256 && s.memory == 512)),
            "not a Fargate size: cpu {} memory {}",
            s.cpu,
            s.memory
        );
    }
    // The endpoint: an origin, and the template's own (never a run's).
    if let Some(e) = &s.endpoint {
        assert!(ferry_core::Origin::parse(e).is_ok(), "endpoint {e:?}");
        assert_eq!(
            template.get("endpoint").and_then(Value::as_str),
            Some(e.as_str())
        );
    }
    // The family names the task definition: `ferry-` and 32 hex digits, the same for every
    // per-run value, another for what the task definition holds.
    let region = s.region.clone().unwrap_or_else(|| "eu-west-1".into());
    let family = s.family(&region);
    assert!(
        family.len() == 38
            && family.starts_with("ferry-")
            && family[6..].bytes().all(|b| b.is_ascii_hexdigit()),
        "family {family:?}"
    );
    let mut per_run = s.clone();
    per_run.command.push("--per-run".into());
    per_run.env.insert("PER_RUN".into(), "1".into());
    per_run.tags.insert("per-run".into(), "1".into());
    per_run.subnets.push("subnet-per-run".into());
    per_run.security_groups.clear();
    per_run.cluster = "per-run".into();
    per_run.assign_public_ip = !s.assign_public_ip;
    assert_eq!(
        per_run.family(&region),
        family,
        "a per-run value changed the family"
    );
    let mut other = s.clone();
    other.image.push_str("-other");
    assert_ne!(
        other.family(&region),
        family,
        "the image is not in the family"
    );
    let mut other = s.clone();
    other.memory = s.memory.wrapping_add(1);
    assert_ne!(
        other.family(&region),
        family,
        "the memory is not in the family"
    );
}

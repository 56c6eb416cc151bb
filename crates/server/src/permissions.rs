//! The cloud permissions each push pool type needs, from the push backends' own lists: what
//! `ferry pool iam-policy` prints, and (a test below) exactly what `infra/permissions.json` —
//! which `scripts/check-infra` compares with the Terraform modules — says.

use ferry_core::PoolType;
use serde_json::{json, Value};

/// The permissions of `pool_type` (`None` for managed pools, which use no cloud), in the
/// shape of `infra/permissions.json`'s entries.
pub fn permissions(pool_type: PoolType) -> Option<Value> {
    match pool_type {
        PoolType::Managed => None,
        PoolType::Ecs => Some(json!({
            "actions": ferry_push_aws::permissions::ACTIONS,
            "trust_actions": ferry_push_aws::permissions::TRUST_ACTIONS,
        })),
        PoolType::CloudRun => {
            let mut permissions: Vec<&str> = ferry_push_gcp::validate::PERMISSIONS.to_vec();
            permissions.push(ferry_push_gcp::validate::ACT_AS);
            permissions.sort_unstable();
            Some(json!({
                "roles": ferry_push_gcp::validate::ROLES,
                "permissions": permissions,
                "workload_identity_roles": ferry_push_gcp::validate::WORKLOAD_IDENTITY_ROLES,
            }))
        }
    }
}

/// An IAM policy document granting an ecs pool's credential what Ferry calls (resources
/// narrowed by the Terraform module; here every resource, for a quick start).
pub fn ecs_policy_document() -> Value {
    let (ecs, pass_role): (Vec<&str>, Vec<&str>) = ferry_push_aws::permissions::ACTIONS
        .iter()
        .partition(|a| a.starts_with("ecs:"));
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "FerryEcs", "Effect": "Allow", "Action": ecs, "Resource": "*"},
            {
                "Sid": "FerryPassTaskRoles",
                "Effect": "Allow",
                "Action": pass_role,
                "Resource": "*",
                "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
            }
        ]
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_code_and_infra_permissions_json_agree() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/permissions.json");
        let file: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(permissions(PoolType::Ecs).as_ref(), Some(&file["ecs"]));
        assert_eq!(
            permissions(PoolType::CloudRun).as_ref(),
            Some(&file["cloud-run"])
        );
        assert_eq!(permissions(PoolType::Managed), None);
    }

    #[test]
    fn the_policy_document_grants_every_action_once() {
        let doc = ecs_policy_document();
        let mut granted: Vec<&str> = doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                s["Action"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap())
            })
            .collect();
        granted.sort_unstable();
        assert_eq!(granted, ferry_push_aws::permissions::ACTIONS);
    }
}

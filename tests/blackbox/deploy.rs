//! What a customer applies to connect a cloud: `ferry pool iam-policy` prints the permissions
//! from the backends' own lists, equal to `infra/permissions.json` (which `scripts/check-infra`
//! compares with the Terraform modules), with no server to talk to.

use serde_json::Value;

use crate::support::{ferry_command, run_cli};

fn infra_permissions() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/permissions.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn iam_policy_prints_what_the_terraform_modules_grant() {
    let file = infra_permissions();
    for pool_type in ["ecs", "cloud-run"] {
        let mut cmd = ferry_command();
        cmd.args(["pool", "iam-policy", "--type", pool_type]);
        let out = run_cli(cmd).await;
        out.assert_success(&[]);
        let mut printed: Value = serde_json::from_str(&out.stdout).unwrap();
        if pool_type == "ecs" {
            // The policy document grants exactly the listed actions.
            let policy = printed.as_object_mut().unwrap().remove("policy").unwrap();
            let mut granted: Vec<String> = policy["Statement"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| s["Action"].as_array().unwrap().clone())
                .map(|a| a.as_str().unwrap().to_owned())
                .collect();
            granted.sort();
            assert_eq!(serde_json::json!(granted), file["ecs"]["actions"]);
        }
        assert_eq!(printed, file[pool_type], "{pool_type}");
    }
    // Managed pools use no cloud.
    let mut cmd = ferry_command();
    cmd.args(["pool", "iam-policy", "--type", "managed"]);
    assert_ne!(run_cli(cmd).await.code, Some(0));
}

//! Every AWS permission the ECS backend uses, in one place: `ferry pool iam-policy --type ecs`
//! prints them, the Terraform module in `infra/terraform/aws-ecs-role` grants exactly them (a
//! test compares), and credential validation checks them.

/// What Ferry's calls in the customer's account need, sorted. `ecs:TagResource` is not called
/// on its own: AWS requires it for the tags RunTask and RegisterTaskDefinition set.
/// `iam:PassRole` is for the task and execution roles a task definition names.
pub const ACTIONS: [&str; 11] = [
    "ecs:DeregisterTaskDefinition",
    "ecs:DescribeClusters",
    "ecs:DescribeTaskDefinition",
    "ecs:DescribeTasks",
    "ecs:ListTaskDefinitions",
    "ecs:ListTasks",
    "ecs:RegisterTaskDefinition",
    "ecs:RunTask",
    "ecs:StopTask",
    "ecs:TagResource",
    "iam:PassRole",
];

/// What the role's trust policy lets Ferry do: assume it with the workspace's external id
/// (`aws-assume-role`), or with a token from Ferry's OIDC issuer (`aws-web-identity`).
pub const TRUST_ACTIONS: [&str; 2] = ["sts:AssumeRole", "sts:AssumeRoleWithWebIdentity"];

#[cfg(test)]
mod tests {
    #[test]
    fn lists_are_sorted_and_unique() {
        for list in [&super::ACTIONS[..], &super::TRUST_ACTIONS[..]] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
        }
    }
}

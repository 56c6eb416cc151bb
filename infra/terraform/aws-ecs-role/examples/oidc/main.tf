# The role trusted through Ferry's OIDC issuer instead of an external id: only tokens for the
# workspace's `etl` and `reports` pools are accepted.

terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.81, < 7.0"
    }
  }
}

provider "aws" {
  region = "us-east-1"
}

module "ferry_ecs_role" {
  source = "../.."

  role_name        = "ferry-ecs-oidc"
  trust            = "oidc"
  workspace_id     = "7d5c2f8e-3b1a-4c6d-9e0f-1a2b3c4d5e6f"
  oidc_issuer_host = "ferry.example.com"
  oidc_audience    = "sts.amazonaws.com"
  oidc_pools       = ["etl", "reports"]
  cluster_arns = [
    "arn:aws:ecs:us-east-1:111111111111:cluster/etl",
    "arn:aws:ecs:us-east-1:111111111111:cluster/reports",
  ]
  execution_role_arns = ["arn:aws:iam::111111111111:role/ecs-task-execution"]
}

output "role_arn" {
  value = module.ferry_ecs_role.role_arn
}

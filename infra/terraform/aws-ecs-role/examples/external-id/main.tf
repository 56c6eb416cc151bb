# The role for a workspace whose ECS pools run in one cluster, assumed by Ferry's principal
# with the workspace's external id.
#   terraform init && terraform apply
#   terraform output -raw credential > prod-aws.json
#   ferry credential create --from prod-aws.json && ferry credential validate aws --pool ecs

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
  region = "eu-west-1"
}

module "ferry_ecs_role" {
  source = "../.."

  role_name           = "ferry-ecs"
  ferry_principal_arn = "arn:aws:iam::222222222222:role/ferry-control-plane"
  external_id         = "ferry-0123456789abcdef0123456789abcdef"
  cluster_arns        = ["arn:aws:ecs:eu-west-1:111111111111:cluster/flows"]
  task_role_arns      = ["arn:aws:iam::111111111111:role/flow-task"]
  execution_role_arns = ["arn:aws:iam::111111111111:role/ecs-task-execution"]

  tags = {
    "managed-by" = "terraform"
  }
}

output "role_arn" {
  value = module.ferry_ecs_role.role_arn
}

output "credential" {
  value = module.ferry_ecs_role.credential
}

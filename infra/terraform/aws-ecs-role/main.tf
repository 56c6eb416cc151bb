# The IAM role a Ferry workspace's ECS pools assume in your account: trusted by Ferry only for
# your workspace (its external id, or its OIDC subject), allowed exactly the ECS calls Ferry's
# ECS backend makes (crates/push-aws), on your clusters, and to pass only the task and
# execution roles you name, only to ECS tasks.

locals {
  oidc = var.trust == "oidc"

  # arn:<partition>:ecs:<region>:<account>:cluster/<name>
  clusters = [for arn in var.cluster_arns : {
    partition = split(":", arn)[1]
    region    = split(":", arn)[3]
    account   = split(":", arn)[4]
    name      = trimprefix(split(":", arn)[5], "cluster/")
  }]

  # The clusters' tasks, and the task definitions Ferry registers in their regions (family
  # ferry-<content hash>, any revision).
  task_arns            = [for c in local.clusters : "arn:${c.partition}:ecs:${c.region}:${c.account}:task/${c.name}/*"]
  task_definition_arns = distinct([for c in local.clusters : "arn:${c.partition}:ecs:${c.region}:${c.account}:task-definition/ferry-*:*"])
  pass_role_arns       = distinct(concat(var.task_role_arns, var.execution_role_arns))

  oidc_provider_arn = local.oidc ? (var.create_oidc_provider ? aws_iam_openid_connect_provider.ferry[0].arn : var.oidc_provider_arn) : null
  oidc_subjects = (length(var.oidc_pools) > 0
    ? [for p in var.oidc_pools : "workspace:${var.workspace_id}:pool:${p}"]
    : ["workspace:${var.workspace_id}:pool:*"]
  )
}

resource "aws_iam_openid_connect_provider" "ferry" {
  count = local.oidc && var.create_oidc_provider ? 1 : 0

  url            = "https://${var.oidc_issuer_host}"
  client_id_list = [var.oidc_audience]
  tags           = var.tags
}

data "aws_iam_policy_document" "trust" {
  # Ferry's principal, only with this workspace's external id (the confused-deputy guard:
  # another workspace's runs cannot get Ferry to assume this role).
  dynamic "statement" {
    for_each = local.oidc ? [] : [1]

    content {
      sid     = "FerryForThisWorkspaceByExternalId"
      effect  = "Allow"
      actions = ["sts:AssumeRole"]

      principals {
        type        = "AWS"
        identifiers = [var.ferry_principal_arn]
      }

      condition {
        test     = "StringEquals"
        variable = "sts:ExternalId"
        values   = [var.external_id]
      }
    }
  }

  # Tokens of Ferry's issuer, for Ferry's audience, whose subject is this workspace (and the
  # listed pools, if any).
  dynamic "statement" {
    for_each = local.oidc ? [1] : []

    content {
      sid     = "FerryIssuerForThisWorkspace"
      effect  = "Allow"
      actions = ["sts:AssumeRoleWithWebIdentity"]

      principals {
        type        = "Federated"
        identifiers = [local.oidc_provider_arn]
      }

      condition {
        test     = "StringEquals"
        variable = "${var.oidc_issuer_host}:aud"
        values   = [var.oidc_audience]
      }

      condition {
        test     = length(var.oidc_pools) > 0 ? "StringEquals" : "StringLike"
        variable = "${var.oidc_issuer_host}:sub"
        values   = local.oidc_subjects
      }
    }
  }
}

# What Ferry's ECS backend calls, and nothing else. Each statement's `actions` is one list;
# their union is infra/permissions.json's "ecs" set (scripts/check-infra compares them).
data "aws_iam_policy_document" "permissions" {
  # validate: the pool's cluster exists and is ACTIVE.
  statement {
    sid       = "DescribeTheClusters"
    effect    = "Allow"
    actions   = ["ecs:DescribeClusters"]
    resources = var.cluster_arns
  }

  # Submit (with the task definition Ferry registered), poll, find again after a crash, and
  # stop runs' tasks: only in these clusters.
  statement {
    sid       = "RunFerryTaskDefinitionsInTheClusters"
    effect    = "Allow"
    actions   = ["ecs:RunTask"]
    resources = local.task_definition_arns

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = var.cluster_arns
    }
  }

  statement {
    sid       = "WatchAndStopTasksInTheClusters"
    effect    = "Allow"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = local.task_arns

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = var.cluster_arns
    }
  }

  # ListTasks has no task resource to name (IAM evaluates it against container instances):
  # any resource, but only in these clusters.
  statement {
    sid       = "ListTasksInTheClusters"
    effect    = "Allow"
    actions   = ["ecs:ListTasks"]
    resources = ["*"]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = var.cluster_arns
    }
  }

  # Task definitions: one per pool template (reused by content hash), deregistered when the
  # template changes. These actions take no resource ARN in IAM.
  statement {
    sid       = "ManageTaskDefinitions"
    effect    = "Allow"
    actions   = ["ecs:DeregisterTaskDefinition", "ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions", "ecs:RegisterTaskDefinition"]
    resources = ["*"]
  }

  # Ferry tags what it creates (ferry:managed on task definitions; ferry:run-id,
  # ferry:workspace-id, ferry:attempt on tasks). ECS authorizes tags given at creation as
  # ecs:TagResource; this allows it only as part of those two calls.
  statement {
    sid       = "TagOnCreateOnly"
    effect    = "Allow"
    actions   = ["ecs:TagResource"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RegisterTaskDefinition", "RunTask"]
    }
  }

  # The task and execution roles the pools' task definitions name: these only, to ECS tasks
  # only.
  dynamic "statement" {
    for_each = length(local.pass_role_arns) > 0 ? [1] : []

    content {
      sid       = "PassTheTaskRolesToEcsTasksOnly"
      effect    = "Allow"
      actions   = ["iam:PassRole"]
      resources = local.pass_role_arns

      condition {
        test     = "StringEquals"
        variable = "iam:PassedToService"
        values   = ["ecs-tasks.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role" "ferry" {
  name                 = var.role_name
  description          = "Assumed by Ferry to run this workspace's flow runs as ECS tasks"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = var.max_session_duration
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags

  lifecycle {
    precondition {
      condition     = local.oidc || (var.ferry_principal_arn != null && var.external_id != null)
      error_message = "trust = \"external_id\" needs ferry_principal_arn and external_id."
    }

    precondition {
      condition     = !local.oidc || (var.oidc_issuer_host != null && var.workspace_id != null)
      error_message = "trust = \"oidc\" needs oidc_issuer_host and workspace_id."
    }

    precondition {
      condition     = !local.oidc || var.create_oidc_provider || var.oidc_provider_arn != null
      error_message = "trust = \"oidc\" with create_oidc_provider = false needs oidc_provider_arn."
    }

    precondition {
      condition     = var.workspace_id == null || can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.workspace_id))
      error_message = "workspace_id must be a Ferry workspace id (a lowercase UUID)."
    }

    precondition {
      condition     = alltrue([for p in var.oidc_pools : can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", p))])
      error_message = "oidc_pools must hold Ferry pool names (lowercase letters, digits and inner dashes)."
    }
  }
}

resource "aws_iam_role_policy" "ferry" {
  name   = "ferry-ecs"
  role   = aws_iam_role.ferry.id
  policy = data.aws_iam_policy_document.permissions.json
}

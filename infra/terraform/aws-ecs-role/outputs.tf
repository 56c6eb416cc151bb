output "role_arn" {
  description = "The role's ARN: the role_arn of the workspace's aws-assume-role credential (`ferry credential create --from <file>`)."
  value       = aws_iam_role.ferry.arn
}

output "role_name" {
  description = "The role's name."
  value       = aws_iam_role.ferry.name
}

output "oidc_provider_arn" {
  description = "trust = oidc: the IAM OIDC provider the role trusts."
  value       = local.oidc_provider_arn
}

output "credential" {
  description = "trust = external_id: a credential file for `ferry credential create --from` (no secret in it), in the region of the first cluster."
  value = local.oidc ? null : jsonencode({
    name     = var.credential_name
    kind     = "aws-assume-role"
    role_arn = aws_iam_role.ferry.arn
    region   = local.clusters[0].region
  })
}

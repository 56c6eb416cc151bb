variable "role_name" {
  description = "Name of the IAM role Ferry assumes."
  type        = string
  default     = "ferry-ecs"
}

variable "credential_name" {
  description = "The name of the Ferry credential in the `credential` output (a Ferry name: lowercase letters, digits, dashes)."
  type        = string
  default     = "aws"
}

variable "trust" {
  description = "How Ferry gets into the role: \"external_id\" (Ferry's AWS principal calls sts:AssumeRole with the workspace's external id) or \"oidc\" (Ferry presents a token from its OIDC issuer to sts:AssumeRoleWithWebIdentity)."
  type        = string
  default     = "external_id"

  validation {
    condition     = contains(["external_id", "oidc"], var.trust)
    error_message = "trust must be \"external_id\" or \"oidc\"."
  }
}

variable "ferry_principal_arn" {
  description = "trust = external_id: the ARN of Ferry's own AWS principal (the role or user its servers run as), from Ferry's operator."
  type        = string
  default     = null
}

variable "external_id" {
  description = "trust = external_id: your workspace's external id, as `ferry credential show <name>` prints it (the same for every aws-assume-role credential of the workspace). Ferry generates it; the role is assumable only with it."
  type        = string
  default     = null
}

variable "workspace_id" {
  description = "trust = oidc: your Ferry workspace's id; only tokens whose subject names this workspace are accepted."
  type        = string
  default     = null
}

variable "oidc_issuer_host" {
  description = "trust = oidc: Ferry's OIDC issuer (its FERRY_PUBLIC_URL) without https://: host and path, if any, e.g. \"ferry.example.com\"."
  type        = string
  default     = null
}

variable "oidc_audience" {
  description = "trust = oidc: the audience (aud) of the tokens Ferry presents."
  type        = string
  default     = "sts.amazonaws.com"
}

variable "oidc_pools" {
  description = "trust = oidc: the names of the workspace's pools allowed to use this role (subject workspace:<id>:pool:<name>). Empty: every pool of the workspace (workspace:<id>:pool:*)."
  type        = list(string)
  default     = []
}

variable "create_oidc_provider" {
  description = "trust = oidc: create the account's IAM OIDC provider for Ferry's issuer. Set false and give oidc_provider_arn when it exists already (an account has one provider per issuer)."
  type        = bool
  default     = true
}

variable "oidc_provider_arn" {
  description = "trust = oidc and create_oidc_provider = false: the ARN of the existing IAM OIDC provider for Ferry's issuer."
  type        = string
  default     = null
}

variable "cluster_arns" {
  description = "The ECS clusters Ferry may run tasks in (full ARNs, arn:aws:ecs:<region>:<account>:cluster/<name>): every pool's `cluster`."
  type        = list(string)

  validation {
    condition     = length(var.cluster_arns) > 0 && alltrue([for a in var.cluster_arns : can(regex("^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:cluster/[A-Za-z0-9_-]+$", a))])
    error_message = "cluster_arns must hold at least one ECS cluster ARN (arn:aws:ecs:<region>:<account>:cluster/<name>)."
  }
}

variable "task_role_arns" {
  description = "The IAM roles the pools' task definitions name as task_role_arn (what the flow's container runs as). Ferry may pass only these, and only to ECS tasks."
  type        = list(string)
  default     = []
}

variable "execution_role_arns" {
  description = "The IAM roles the pools' task definitions name as execution_role_arn (ECS pulls the image, writes awslogs and reads the `secrets` with it). Ferry may pass only these, and only to ECS tasks."
  type        = list(string)
  default     = []
}

variable "max_session_duration" {
  description = "Longest session of the role, in seconds (Ferry refreshes its session before it expires)."
  type        = number
  default     = 3600
}

variable "permissions_boundary_arn" {
  description = "A permissions boundary for the role, if your organisation requires one."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for the role and the OIDC provider."
  type        = map(string)
  default     = {}
}

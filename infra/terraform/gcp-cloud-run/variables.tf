variable "project_id" {
  description = "The project the pools' Cloud Run jobs run in."
  type        = string
}

variable "service_account_id" {
  description = "Account id (the part before @) of the service account Ferry acts as in this project."
  type        = string
  default     = "ferry-cloud-run"
}

variable "runtime_service_account_emails" {
  description = "The service accounts the pools' jobs run as (each pool's `service_account`). Ferry may act as these only (roles/iam.serviceAccountUser on each of them, never on the project)."
  type        = list(string)

  validation {
    condition     = length(var.runtime_service_account_emails) > 0 && alltrue([for e in var.runtime_service_account_emails : can(regex("^[^@]+@[a-z0-9-]+\\.iam\\.gserviceaccount\\.com$", e)) || can(regex("^[0-9]+-compute@developer\\.gserviceaccount\\.com$", e))])
    error_message = "runtime_service_account_emails must hold at least one service account email."
  }
}

variable "workload_identity" {
  description = "Optional: trust Ferry's OIDC issuer through a workload identity pool instead of a service-account key. Tokens are accepted only for the given audience and when their subject names the workspace (workspace:<workspace_id>:...), and only the listed pools' subjects (or, with none listed, every identity of this pool, which admits only the workspace) may impersonate the service account."
  type = object({
    workspace_id = string
    issuer_uri   = string
    audiences    = optional(list(string), [])
    pools        = optional(list(string), [])
    pool_id      = optional(string, "ferry")
    provider_id  = optional(string, "ferry")
  })
  default = null

  validation {
    condition     = var.workload_identity == null || can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.workload_identity.workspace_id))
    error_message = "workload_identity.workspace_id must be a Ferry workspace id (a lowercase UUID)."
  }

  validation {
    condition     = var.workload_identity == null || startswith(try(var.workload_identity.issuer_uri, ""), "https://")
    error_message = "workload_identity.issuer_uri must be Ferry's issuer URL, https://..."
  }

  validation {
    condition     = var.workload_identity == null || alltrue([for p in try(var.workload_identity.pools, []) : can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", p))])
    error_message = "workload_identity.pools must hold Ferry pool names (lowercase letters, digits and inner dashes)."
  }
}

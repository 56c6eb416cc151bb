# The service account a Ferry workspace's Cloud Run pools act as in your project: allowed to
# manage and run Cloud Run jobs (roles/run.developer) and to act as the jobs' runtime service
# accounts only (roles/iam.serviceAccountUser on each, not on the project). Optionally, a
# workload identity pool that trusts Ferry's OIDC issuer for your workspace only, so no
# service-account key ever leaves the project.

locals {
  wif = var.workload_identity != null

  # The Cloud Run roles the service account gets on the project, and what Ferry needs of
  # them (crates/push-gcp/src/validate.rs checks these with testIamPermissions): the "roles"
  # and "permissions" of infra/permissions.json's "cloud-run" set.
  project_roles = ["roles/run.developer"]
}

resource "google_service_account" "ferry" {
  project      = var.project_id
  account_id   = var.service_account_id
  display_name = "Ferry (Cloud Run pools)"
  description  = "Acted as by Ferry to create, run and clean up this workspace's Cloud Run jobs"
}

resource "google_project_iam_member" "run_developer" {
  for_each = toset(local.project_roles)

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.ferry.email}"
}

# iam.serviceAccounts.actAs on the jobs' runtime accounts, and on nothing else.
resource "google_service_account_iam_member" "act_as_runtime" {
  for_each = toset(var.runtime_service_account_emails)

  service_account_id = "projects/${var.project_id}/serviceAccounts/${each.value}"
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.ferry.email}"
}

resource "google_iam_workload_identity_pool" "ferry" {
  count = local.wif ? 1 : 0

  project                   = var.project_id
  workload_identity_pool_id = var.workload_identity.pool_id
  display_name              = "Ferry"
  description               = "Ferry's OIDC issuer, for workspace ${var.workload_identity.workspace_id} only"
}

resource "google_iam_workload_identity_pool_provider" "ferry" {
  count = local.wif ? 1 : 0

  project                            = var.project_id
  workload_identity_pool_id          = google_iam_workload_identity_pool.ferry[0].workload_identity_pool_id
  workload_identity_pool_provider_id = var.workload_identity.provider_id
  display_name                       = "Ferry"
  # Only tokens whose subject is this workspace's (workspace:<id>:pool:<pool>) are exchanged.
  attribute_condition = "assertion.sub.startsWith(\"workspace:${var.workload_identity.workspace_id}:\")"
  attribute_mapping = {
    "google.subject" = "assertion.sub"
  }

  oidc {
    issuer_uri        = var.workload_identity.issuer_uri
    allowed_audiences = var.workload_identity.audiences
  }
}

# Who may impersonate the service account: the listed pools' subjects, or every identity of
# the workload identity pool (which the provider's condition limits to the workspace).
resource "google_service_account_iam_member" "workload_identity_user" {
  for_each = local.wif ? toset(
    length(var.workload_identity.pools) > 0
    ? [for p in var.workload_identity.pools : "principal://iam.googleapis.com/${google_iam_workload_identity_pool.ferry[0].name}/subject/workspace:${var.workload_identity.workspace_id}:pool:${p}"]
    : ["principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.ferry[0].name}/*"]
  ) : toset([])

  service_account_id = google_service_account.ferry.name
  role               = "roles/iam.workloadIdentityUser"
  member             = each.value
}

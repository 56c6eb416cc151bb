output "service_account_email" {
  description = "The service account Ferry acts as: the client_email of a gcp-service-account-key credential, or the account a gcp-workload-identity credential impersonates."
  value       = google_service_account.ferry.email
}

output "workload_identity_provider" {
  description = "With workload_identity: the provider's full resource name (projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>)."
  value       = local.wif ? google_iam_workload_identity_pool_provider.ferry[0].name : null
}

output "workload_identity_audience" {
  description = "With workload_identity: the `audience` of the gcp-workload-identity credential's external_account configuration."
  value       = local.wif ? "//iam.googleapis.com/${google_iam_workload_identity_pool_provider.ferry[0].name}" : null
}

output "service_account_impersonation_url" {
  description = "With workload_identity: the `service_account_impersonation_url` of the external_account configuration."
  value       = "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/${google_service_account.ferry.email}:generateAccessToken"
}

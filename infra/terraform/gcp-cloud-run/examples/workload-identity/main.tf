# The same service account, impersonated through a workload identity pool that trusts Ferry's
# OIDC issuer for one workspace, and only its `etl` pool: no key is created.

terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0, < 8.0"
    }
  }
}

provider "google" {
  project = "acme-flows"
  region  = "europe-west1"
}

module "ferry_cloud_run" {
  source = "../.."

  project_id                     = "acme-flows"
  runtime_service_account_emails = ["flows@acme-flows.iam.gserviceaccount.com"]

  workload_identity = {
    workspace_id = "7d5c2f8e-3b1a-4c6d-9e0f-1a2b3c4d5e6f"
    issuer_uri   = "https://ferry.example.com"
    audiences    = ["https://ferry.example.com"]
    pools        = ["etl"]
  }
}

output "service_account_email" {
  value = module.ferry_cloud_run.service_account_email
}

output "workload_identity_audience" {
  value = module.ferry_cloud_run.workload_identity_audience
}

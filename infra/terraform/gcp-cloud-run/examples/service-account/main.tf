# The service account for a workspace's Cloud Run pools in one project; jobs run as
# flows@<project>. Ferry then authenticates with a key of this account (a
# gcp-service-account-key credential):
#   terraform init && terraform apply
#   gcloud iam service-accounts keys create key.json --iam-account "$(terraform output -raw service_account_email)"
# or, better, with no key at all: see ../workload-identity.

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
}

output "service_account_email" {
  value = module.ferry_cloud_run.service_account_email
}

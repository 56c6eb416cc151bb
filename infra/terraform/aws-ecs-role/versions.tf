terraform {
  # Lifecycle preconditions and optional() object attributes.
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.81 made aws_iam_openid_connect_provider's thumbprint_list optional (IAM checks the
      # issuer's certificate against its own trusted CAs).
      version = ">= 5.81, < 7.0"
    }
  }
}

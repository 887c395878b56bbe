terraform {
  required_version = ">= 1.6"

  required_providers {
    digitalocean = {
      source  = "digitalocean/digitalocean"
      version = "~> 2.40"
    }
  }

  # Remote state lives in a Spaces bucket (S3 API). The bucket, key and
  # endpoint are given at `terraform init -backend-config=backend.hcl`;
  # credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY set to a
  # Spaces access key. See backend.hcl.example and docs/operations.md.
  backend "s3" {}
}

# Token from DIGITALOCEAN_TOKEN, Spaces keys from SPACES_ACCESS_KEY_ID and
# SPACES_SECRET_ACCESS_KEY: no credential is ever written in these files.
provider "digitalocean" {}

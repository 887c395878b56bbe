locals {
  tag_db    = "${var.name}-db"
  tag_api   = "${var.name}-api"
  tag_admin = "${var.name}-admin"

  droplets = {
    "core-db-prod"   = { size = var.db_size, tags = [local.tag_db, "prod"] }
    "core-api-prod"  = { size = var.api_size, tags = [local.tag_api, "prod"] }
    "core-api-stage" = { size = var.api_size, tags = [local.tag_api, "stage"] }
    "admin-panel"    = { size = var.admin_size, tags = [local.tag_admin, "prod"] }
  }
}

resource "digitalocean_vpc" "main" {
  name     = "${var.name}-${var.region}"
  region   = var.region
  ip_range = var.vpc_ip_range
}

resource "digitalocean_tag" "role" {
  for_each = toset([local.tag_db, local.tag_api, local.tag_admin, "prod", "stage"])
  name     = each.value
}

resource "digitalocean_droplet" "host" {
  for_each = local.droplets

  name       = each.key
  region     = var.region
  size       = each.value.size
  image      = var.image
  vpc_uuid   = digitalocean_vpc.main.id
  ssh_keys   = var.ssh_key_fingerprints
  tags       = [for t in each.value.tags : digitalocean_tag.role[t].id]
  ipv6       = true
  monitoring = true
  backups    = var.droplet_backups

  lifecycle {
    # A new image release must never silently rebuild a server.
    ignore_changes = [image]
  }
}

# Object storage for X-rays and reports (RAIOX_STORAGE_URL=s3://...), one
# bucket per environment, and one for the nightly database dumps.
resource "digitalocean_spaces_bucket" "data" {
  for_each = toset(["prod", "stage"])
  name     = "${var.name}-data-${each.value}"
  region   = var.region
  acl      = "private"
}

resource "digitalocean_spaces_bucket" "backups" {
  name   = "${var.name}-backups"
  region = var.region
  acl    = "private"

  versioning {
    enabled = false
  }

  lifecycle_rule {
    id      = "expire-dumps"
    prefix  = "postgres/"
    enabled = true

    expiration {
      days = var.backup_retention_days
    }
  }
}

variable "name" {
  description = "Prefix of every resource name (buckets, VPC, firewalls)."
  type        = string
  default     = "raiox"
}

variable "region" {
  description = "DigitalOcean region of the droplets, VPC and buckets."
  type        = string
  default     = "nyc3"
}

variable "image" {
  description = "Droplet image (Ubuntu 24.04 LTS: its Python 3.12 is one the raiox role accepts)."
  type        = string
  default     = "ubuntu-24-04-x64"

  # Only images whose python3 is in deploy/roles/raiox raiox_python_versions (the Pythons requirements/prod.lock
  # was checked for): Ubuntu 22.04's 3.10 cannot run raiox, and the role would refuse it after the droplet exists.
  validation {
    condition     = contains(["ubuntu-24-04-x64"], var.image)
    error_message = "Use ubuntu-24-04-x64 (Ubuntu 24.04 LTS, Python 3.12): the raiox role runs only on Python 3.11 or 3.12 (raiox_python_versions), and Ubuntu 22.04's Python 3.10 cannot run raiox."
  }
}

variable "db_size" {
  description = "Size of core-db-prod (2 GB as in the plan)."
  type        = string
  default     = "s-1vcpu-2gb"
}

variable "api_size" {
  description = "Size of core-api-prod and core-api-stage (4 GB as in the plan)."
  type        = string
  default     = "s-2vcpu-4gb"
}

variable "admin_size" {
  description = "Size of the admin-panel droplet."
  type        = string
  default     = "s-1vcpu-2gb"
}

variable "vpc_ip_range" {
  description = "Private network of the droplets."
  type        = string
  default     = "10.116.0.0/20"
}

variable "ssh_key_fingerprints" {
  description = "Fingerprints of SSH keys already uploaded to the DigitalOcean account."
  type        = list(string)

  validation {
    condition     = length(var.ssh_key_fingerprints) > 0
    error_message = "Give at least one SSH key fingerprint."
  }
}

variable "operator_cidrs" {
  description = "Addresses allowed to reach SSH (the operators' and the CI runner's), in CIDR form."
  type        = list(string)

  validation {
    condition = length(var.operator_cidrs) > 0 && alltrue([
      for cidr in var.operator_cidrs : can(cidrhost(cidr, 0)) && !contains(["0.0.0.0/0", "::/0"], cidr)
    ])
    error_message = "operator_cidrs must be explicit CIDRs; SSH is never open to the world."
  }
}

variable "droplet_backups" {
  description = "Enable DigitalOcean weekly droplet backups (in addition to the nightly pg_dump)."
  type        = bool
  default     = true
}

variable "backup_retention_days" {
  description = "Days a nightly database dump is kept in the backups bucket."
  type        = number
  default     = 30
}

output "public_ipv4" {
  description = "Public address of each droplet."
  value       = { for k, d in digitalocean_droplet.host : k => d.ipv4_address }
}

output "private_ipv4" {
  description = "VPC address of each droplet (PostgreSQL listens and is reached here)."
  value       = { for k, d in digitalocean_droplet.host : k => d.ipv4_address_private }
}

output "buckets" {
  description = "Spaces buckets and their S3 endpoint."
  value = {
    endpoint = "https://${var.region}.digitaloceanspaces.com"
    data     = { for k, b in digitalocean_spaces_bucket.data : k => b.name }
    backups  = digitalocean_spaces_bucket.backups.name
  }
}

output "ansible_inventory" {
  description = "Inventory for deploy/: terraform output -raw ansible_inventory > deploy/inventory/hosts.yml"
  value = templatefile("${path.module}/templates/inventory.yml.tftpl", {
    hosts = {
      for k, d in digitalocean_droplet.host : k => {
        public  = d.ipv4_address
        private = d.ipv4_address_private
      }
    }
  })
}

# Cloud firewalls. Inbound is exactly:
#   - SSH (22) from var.operator_cidrs only, on every droplet;
#   - HTTP/HTTPS (80, 443) from anywhere, on the web hosts (API and admin);
#   - PostgreSQL (5432) on the db host, only from droplets tagged API or admin.
# Nothing else. Outbound is open (apt, PyPI, Jotform, Spaces, SMTP).
# tests/ops/test_terraform.py enforces these rules.

locals {
  outbound_all = [
    { protocol = "tcp", port_range = "1-65535" },
    { protocol = "udp", port_range = "1-65535" },
    { protocol = "icmp", port_range = null },
  ]
}

resource "digitalocean_firewall" "web" {
  name = "${var.name}-web"
  tags = [digitalocean_tag.role[local.tag_api].id, digitalocean_tag.role[local.tag_admin].id]

  inbound_rule {
    protocol         = "tcp"
    port_range       = "22"
    source_addresses = var.operator_cidrs
  }

  inbound_rule {
    protocol         = "tcp"
    port_range       = "80"
    source_addresses = ["0.0.0.0/0", "::/0"]
  }

  inbound_rule {
    protocol         = "tcp"
    port_range       = "443"
    source_addresses = ["0.0.0.0/0", "::/0"]
  }

  dynamic "outbound_rule" {
    for_each = local.outbound_all
    content {
      protocol              = outbound_rule.value.protocol
      port_range            = outbound_rule.value.port_range
      destination_addresses = ["0.0.0.0/0", "::/0"]
    }
  }
}

resource "digitalocean_firewall" "db" {
  name = "${var.name}-db"
  tags = [digitalocean_tag.role[local.tag_db].id]

  inbound_rule {
    protocol         = "tcp"
    port_range       = "22"
    source_addresses = var.operator_cidrs
  }

  inbound_rule {
    protocol    = "tcp"
    port_range  = "5432"
    source_tags = [digitalocean_tag.role[local.tag_api].id, digitalocean_tag.role[local.tag_admin].id]
  }

  dynamic "outbound_rule" {
    for_each = local.outbound_all
    content {
      protocol              = outbound_rule.value.protocol
      port_range            = outbound_rule.value.port_range
      destination_addresses = ["0.0.0.0/0", "::/0"]
    }
  }
}

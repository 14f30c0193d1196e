# Coffer server configuration
ui            = true
disable_mlock = false
api_addr      = "https://10.0.0.1:8200"
cluster_addr  = "https://10.0.0.1:8201" // inline
log_level     = "info"
/* block comment
   spanning lines */
storage "raft" {
  path    = "/var/lib/coffer"
  node_id = "node-1"
  retry_join {
    leader_api_addr = "https://10.0.0.2:8200"
  }
  retry_join {
    leader_api_addr = "https://10.0.0.3:8200"
  }
}

listener "tcp" {
  address       = "0.0.0.0:8200"
  tls_cert_file = "/etc/coffer/tls.crt"
  tls_min_version = "tls12"
}
listener "tcp" {
  address     = "127.0.0.1:8300"
  tls_disable = true
}
seal "shamir" {}
telemetry {
  disable_hostname = true
  prometheus_retention_time = "30s"
}
default_lease_ttl = "768h"
max_request_size  = 33554432
ratio = -1.5e2
banner = <<EOF
Authorized use only.
  Indented line.
EOF
after_heredoc = "x"
# Policy
path "secret/data/*" {
  capabilities = ["create", "read", "update",]
}
path "secret/foo" {
  capabilities = [
    "read",
    "list"
  ]
  allowed_parameters = {
    "*"   = []
    "bar" = ["zip", "zap"]
  }
  min_wrapping_ttl = "1s"
  max_wrapping_ttl = 90
}
path "sys/*" { capabilities = ["deny"] }

# A single-node Coffer server on loopback without TLS (for trying it out).
storage "raft" {
  path    = "/tmp/coffer-data"
  node_id = "node1"
}

listener "tcp" {
  address     = "127.0.0.1:8200"
  tls_disable = true
}

api_addr      = "http://127.0.0.1:8200"
cluster_addr  = "https://127.0.0.1:8201"
disable_mlock = true
log_level     = "info"
ui            = true

seal "shamir" {}

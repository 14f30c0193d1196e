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

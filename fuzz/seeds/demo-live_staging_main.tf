resource "aws_cloudtrail" "staging" {
  name                       = "staging-trail"
  s3_bucket_name             = "acme-staging-audit-logs"
  enable_log_file_validation = true
  kms_key_id                 = "" # TODO: pick a key
}

module "audit" {
  source = "../../modules/audit-trail"
  name   = "staging-audit"
}

locals {
  # Terraform keeps the last value of a repeated key.
  tags = {
    Name    = "audit"
    Name    = "cloudtrail"
    "Owner" = "security"
    "Owner" = "platform"
  }
}

resource "aws_cloudtrail" "main" {
  name                          = "main"
  s3_bucket_name                = "audit-logs"
  include_global_service_events = true
  is_multi_region_trail         = true
  enable_log_file_validation    = true
  tags                          = local.tags
}

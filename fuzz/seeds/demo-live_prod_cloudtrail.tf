# Organisation-wide trail for the production account.
resource "aws_cloudtrail" "org" {
  name                          = "prod-org-trail"
  s3_bucket_name                = aws_s3_bucket.audit.id
  include_global_service_events = true
  is_multi_region_trail         = true
  is_organization_trail         = true
  enable_log_file_validation    = true

  event_selector {
    read_write_type           = "All"
    include_management_events = true
  }

  tags = local.tags
}

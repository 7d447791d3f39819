locals {
  cloudtrail_log_group_arn = "arn:aws:logs:us-east-1:123456789012:log-group:cloudtrail:*"
}

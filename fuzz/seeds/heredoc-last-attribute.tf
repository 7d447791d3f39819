resource "aws_cloudtrail" "heredoc" {
  s3_bucket_name             = "logs"
  name                       = "heredoc"
  cloud_watch_logs_group_arn = <<-EOT
    arn:aws:logs:us-east-1:123456789012:log-group:trail:*
  EOT
}

resource "aws_cloudtrail" "unaligned" {
  name = "unaligned"
  s3_bucket_name = "logs"
  enable_logging    = true
}

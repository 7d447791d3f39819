resource "aws_cloudtrail" "audit" {
  provider       = aws.audit
  name           = "audit"
  s3_bucket_name = "logs"
}

data "aws_caller_identity" "current" {}

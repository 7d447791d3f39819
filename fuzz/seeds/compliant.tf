resource "aws_cloudtrail" "ok" {
  name           = "ok-trail"
  s3_bucket_name = "logs"
  kms_key_id     = aws_kms_key.ok.arn
}

resource "aws_kms_key" "ok" {
  description         = "trail key"
  enable_key_rotation = true
}

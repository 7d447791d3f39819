resource "aws_cloudtrail" "first" {
  name           = "first"
  s3_bucket_name = "logs"
}

resource "aws_cloudtrail" "second" {
  name           = "second"
  s3_bucket_name = "logs"
  kms_key_id     = ""
}

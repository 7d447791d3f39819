resource "aws_cloudtrail" "b" {
  name           = "trail-b"
  s3_bucket_name = "logs"
}

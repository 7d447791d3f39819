resource "aws_cloudtrail" "a" {
  name           = "trail-a"
  s3_bucket_name = "logs"
}

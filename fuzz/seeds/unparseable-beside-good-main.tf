resource "aws_cloudtrail" "good" {
  name           = "good"
  s3_bucket_name = "logs"
}

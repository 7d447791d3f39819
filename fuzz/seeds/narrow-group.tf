resource "aws_cloudtrail" "narrow" {
  s3_bucket_name = "logs"

  name = "narrow"
  tags = {}
}

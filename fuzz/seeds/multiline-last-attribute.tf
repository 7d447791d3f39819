resource "aws_cloudtrail" "tagged" {
  name           = "tagged"
  s3_bucket_name = "logs"
  tags = {
    Team = "security"
  }
}

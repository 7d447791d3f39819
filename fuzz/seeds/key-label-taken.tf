resource "aws_kms_key" "main_cloudtrail" {
  description         = "Something else that happens to use the label"
  enable_key_rotation = true
}

data "aws_partition" "current" {
  count = 0
}

resource "aws_cloudtrail" "main" {
  name           = "main"
  s3_bucket_name = "logs"
}

locals {
  x = { a = 1, "a" = 2, a = 3, b = { c = 1, c = 2 } }
}
resource "aws_cloudtrail" "t" {
  name = "t"
  s3_bucket_name = "b"
  kms_key_id = local.x.a
}

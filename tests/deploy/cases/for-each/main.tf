resource "aws_cloudtrail" "team" {
  for_each = toset(["payments", "search"])

  name           = "ctfix-deploy-team-${each.key}"
  s3_bucket_name = aws_s3_bucket.logs.id
  s3_key_prefix  = each.key
  kms_key_id     = null

  depends_on = [aws_s3_bucket_policy.logs]
}

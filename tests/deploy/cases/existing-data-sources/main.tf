resource "aws_cloudtrail" "main" {
  name                       = "ctfix-deploy-existing-data"
  s3_bucket_name             = aws_s3_bucket.logs.id
  is_multi_region_trail      = true
  enable_log_file_validation = true
  kms_key_id                 = ""

  tags = {
    account   = data.aws_caller_identity.me.account_id
    partition = data.aws_partition.this.partition
  }

  depends_on = [aws_s3_bucket_policy.logs]
}

# The trail already points at a customer-managed key of the module, but the key's policy
# does not let CloudTrail use it: `terraform apply` of the trail fails on AWS with
# InsufficientEncryptionPolicyException. ctfix must extend that policy (and keep the key).

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

resource "aws_kms_key" "logs" {
  description             = "Log encryption"
  deletion_window_in_days = 7
  enable_key_rotation     = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "EnableAccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
    ]
  })
}

resource "aws_cloudtrail" "main" {
  name           = "ctfix-deploy-extended"
  s3_bucket_name = aws_s3_bucket.logs.id
  kms_key_id     = aws_kms_key.logs.arn

  depends_on = [aws_s3_bucket_policy.logs]
}

# The module declares a key for CloudTrail (policy, alias, output, the logs bucket's SSE-KMS)
# and forgets only the trail's kms_key_id; the trail has a count. ctfix must wire that key,
# not generate a second one.

variable "low_cost" {
  type    = bool
  default = false
}

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

resource "aws_kms_key" "cloudtrail" {
  description             = "KMS key for CloudTrail"
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
      {
        Sid       = "AllowCloudTrailToEncryptLogs"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = "kms:GenerateDataKey*"
        Resource  = "*"
        Condition = {
          StringLike = {
            "kms:EncryptionContext:aws:cloudtrail:arn" = "arn:${data.aws_partition.current.partition}:cloudtrail:*:${data.aws_caller_identity.current.account_id}:trail/*"
          }
        }
      },
      {
        Sid       = "AllowCloudTrailToDescribeKey"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = "kms:DescribeKey"
        Resource  = "*"
      },
    ]
  })
}

resource "aws_kms_alias" "cloudtrail" {
  name          = "alias/cloudtrail-key"
  target_key_id = aws_kms_key.cloudtrail.key_id
}

output "cloudtrail_kms_key_arn" {
  value = aws_kms_key.cloudtrail.arn
}

resource "aws_cloudtrail" "main" {
  count = var.low_cost ? 0 : 1

  name                          = "ctfix-deploy-existing-key"
  s3_bucket_name                = aws_s3_bucket.logs.id
  include_global_service_events = true

  depends_on = [aws_s3_bucket_policy.logs]
}

# Keys declared with the trail's own count, whose policies let CloudTrail use them: ctfix
# must wire each trail instance to the key instance with the same index.

variable "trail_count" {
  description = "How many regional trails to create."
  type        = number
  default     = 2
}

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

resource "aws_kms_key" "regional" {
  count = var.trail_count

  description             = "Regional trail ${count.index}"
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

resource "aws_cloudtrail" "regional" {
  count = var.trail_count

  name           = "ctfix-deploy-same-count-${count.index}"
  s3_bucket_name = aws_s3_bucket.logs.id
  s3_key_prefix  = "trail-${count.index}"

  depends_on = [aws_s3_bucket_policy.logs]
}

# The customer-managed key ctfix generates for a trail. ctfix fills in the names in capitals
# (and replaces the META_ARGUMENTS line with the trail's provider/count/for_each, or removes
# it); everything else is written as it stands. This comment block is not copied.
# Policy facts (AWS CloudTrail User Guide, "Configure AWS KMS key policies for CloudTrail"):
# the account root administers the key; CloudTrail may GenerateDataKey* for trails of this
# account, scoped to this trail by aws:SourceArn; CloudTrail may DescribeKey. No statement
# lets anyone decrypt: the root statement delegates to IAM, so a log reader needs an IAM
# policy allowing kms:Decrypt on this key (the independent permission the control is about).
# The trail ARN is built from the trail's name, never from aws_cloudtrail.<x>.arn, which
# would be a cycle.
# --- template ---
resource "aws_kms_key" "KEY_LABEL" {
  # META_ARGUMENTS
  description             = "Encrypts CloudTrail logs of trail ${TRAIL_NAME}"
  deletion_window_in_days = 30
  enable_key_rotation     = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "EnableAccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.PARTITION_LABEL.partition}:iam::${data.aws_caller_identity.IDENTITY_LABEL.account_id}:root" }
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
            "kms:EncryptionContext:aws:cloudtrail:arn" = "arn:${data.aws_partition.PARTITION_LABEL.partition}:cloudtrail:*:${data.aws_caller_identity.IDENTITY_LABEL.account_id}:trail/*"
            "aws:SourceArn"                            = "arn:${data.aws_partition.PARTITION_LABEL.partition}:cloudtrail:*:${data.aws_caller_identity.IDENTITY_LABEL.account_id}:trail/${TRAIL_NAME}"
          }
        }
      },
      {
        Sid       = "AllowCloudTrailToDescribeKey"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = "kms:DescribeKey"
        Resource  = "*"
        Condition = {
          StringLike = {
            "aws:SourceArn" = "arn:${data.aws_partition.PARTITION_LABEL.partition}:cloudtrail:*:${data.aws_caller_identity.IDENTITY_LABEL.account_id}:trail/${TRAIL_NAME}"
          }
        }
      },
    ]
  })
}

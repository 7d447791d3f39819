# The statements ctfix adds to a `data "aws_iam_policy_document"` that a trail's key uses when
# that policy does not let CloudTrail use the key. Each `statement` block below is copied as it
# stands (the names in capitals filled in); the data block around them is not.
# --- template ---
data "aws_iam_policy_document" "TEMPLATE" {
  statement {
    sid       = "AllowCloudTrailToEncryptLogs"
    effect    = "Allow"
    actions   = ["kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:cloudtrail:arn"
      values   = ["arn:${data.aws_partition.PARTITION_LABEL.partition}:cloudtrail:*:${data.aws_caller_identity.IDENTITY_LABEL.account_id}:trail/*"]
    }
  }

  statement {
    sid       = "AllowCloudTrailToDescribeKey"
    effect    = "Allow"
    actions   = ["kms:DescribeKey"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }
  }
}

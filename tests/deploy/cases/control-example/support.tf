# What the control's example (main.tf, unchanged) refers to, made real so that it deploys:
# the bucket it names, with the policy CloudTrail needs, the log group behind
# local.cloudtrail_log_group_arn, and the role named in cloud_watch_logs_role_arn.

locals {
  # CloudTrail wants the log group ARN with `:*`. The condition always holds: reading the
  # bucket policy and the role policy here orders the trail after them (CloudTrail refuses a
  # bucket it may not write to) without touching the example's trail block.
  cloudtrail_log_group_arn = (
    aws_s3_bucket_policy.trail.bucket != "" && aws_iam_role_policy.trail_logs.id != ""
    ? "${aws_cloudwatch_log_group.trail.arn}:*"
    : null
  )
}

resource "aws_s3_bucket" "trail" {
  bucket = "example-bucket-abc123"
}

resource "aws_s3_bucket_policy" "trail" {
  bucket = aws_s3_bucket.trail.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AWSCloudTrailAclCheck"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = "s3:GetBucketAcl"
        Resource  = aws_s3_bucket.trail.arn
      },
      {
        Sid       = "AWSCloudTrailWrite"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.trail.arn}/AWSLogs/*"
        Condition = { StringEquals = { "s3:x-amz-acl" = "bucket-owner-full-control" } }
      },
    ]
  })
}

resource "aws_cloudwatch_log_group" "trail" {
  name              = "pofix-abc123"
  retention_in_days = 90
}

resource "aws_iam_role" "trail_logs" {
  name = "example-role"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "cloudtrail.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy" "trail_logs" {
  name = "cloudtrail-to-cloudwatch"
  role = aws_iam_role.trail_logs.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
      Resource = "${aws_cloudwatch_log_group.trail.arn}:*"
    }]
  })
}

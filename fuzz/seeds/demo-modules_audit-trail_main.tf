variable "name" {
  type = string
}

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

# Already compliant: a dedicated key whose policy lets CloudTrail use it.
resource "aws_cloudtrail" "this" {
  name           = var.name
  s3_bucket_name = "${var.name}-logs"
  kms_key_id     = aws_kms_key.this.arn
}

resource "aws_kms_key" "this" {
  description         = "CloudTrail logs of ${var.name}"
  enable_key_rotation = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "Admin"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudTrail"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = ["kms:GenerateDataKey*", "kms:DescribeKey"]
        Resource  = "*"
      },
    ]
  })
}

# use-key naming a key of the module whose policy does not let CloudTrail use it: wiring it
# would not make the trail compliant, so nothing is written and the error says that the
# configured key, not ctfix's plan, falls short.
resource "aws_kms_key" "central" {
  description         = "Central key"
  enable_key_rotation = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "Admin"
        Effect    = "Allow"
        Principal = { AWS = "arn:aws:iam::111122223333:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
    ]
  })
}

resource "aws_cloudtrail" "main" {
  name           = "main-trail"
  s3_bucket_name = "audit-logs"
}

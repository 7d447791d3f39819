# The audit trail lives in another region, through an aliased provider (the harness writes the
# provider blocks from case.json). The module already reads the caller identity on the
# default provider; ctfix must not reuse it for a key on aws.audit.

data "aws_caller_identity" "current" {}

resource "aws_cloudtrail" "audit" {
  provider = aws.audit

  name           = "ctfix-deploy-audit"
  s3_bucket_name = aws_s3_bucket.logs.id

  tags = {
    owner = data.aws_caller_identity.current.account_id
  }

  depends_on = [aws_s3_bucket_policy.logs]
}

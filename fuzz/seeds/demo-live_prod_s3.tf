locals {
  tags = {
    Environment = "prod"
    Owner       = "platform-security"
  }
}

resource "aws_s3_bucket" "audit" {
  bucket = "acme-prod-audit-logs"
  tags   = local.tags
}

data "aws_caller_identity" "current" {}

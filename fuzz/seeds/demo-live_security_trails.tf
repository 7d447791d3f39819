variable "regions" {
  type    = set(string)
  default = ["eu-west-1", "us-east-1"]
}

provider "aws" {
  alias  = "security"
  region = "eu-west-1"
}

# One trail per region, in the security account.
resource "aws_cloudtrail" "regional" {
  for_each       = var.regions
  provider       = aws.security
  name           = "security-${each.key}"
  s3_bucket_name = "acme-security-audit-logs"
  kms_key_id     = null
}

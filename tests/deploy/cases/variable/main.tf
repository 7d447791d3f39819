variable "cloudtrail_kms_key_id" {
  description = "ARN of the KMS key that encrypts the trail's logs."
  type        = string
  default     = null
}

resource "aws_cloudtrail" "main" {
  name           = "ctfix-deploy-variable"
  s3_bucket_name = aws_s3_bucket.logs.id
  kms_key_id     = var.cloudtrail_kms_key_id

  depends_on = [aws_s3_bucket_policy.logs]
}

variable "trail_count" {
  description = "How many regional trails to create."
  type        = number
  default     = 2
}

resource "aws_cloudtrail" "regional" {
  count = var.trail_count

  name                          = "ctfix-deploy-config-${count.index}"
  s3_bucket_name                = aws_s3_bucket.logs.id
  s3_key_prefix                 = "trail-${count.index}"
  include_global_service_events = count.index == 0

  depends_on = [aws_s3_bucket_policy.logs]
}

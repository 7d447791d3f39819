variable "enabled" {
  type    = bool
  default = true
}

resource "aws_cloudtrail" "this" {
  count          = var.enabled ? 1 : 0
  name           = "trail-${count.index}"
  s3_bucket_name = "logs"
}

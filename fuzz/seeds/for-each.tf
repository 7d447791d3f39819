variable "trails" {
  type    = map(string)
  default = { app = "app-logs", infra = "infra-logs" }
}

resource "aws_cloudtrail" "per_team" {
  for_each       = var.trails
  name           = each.key
  s3_bucket_name = each.value
}

resource "aws_cloudtrail" "aligned" {
  name                          = "aligned"
  s3_bucket_name                = "logs"
  include_global_service_events = false
}

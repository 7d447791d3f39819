resource "aws_cloudtrail" "blocks" {
  event_selector {
    read_write_type = "All"
  }
}

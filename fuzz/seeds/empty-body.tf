resource "aws_cloudtrail" "empty" {}

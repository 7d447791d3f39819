resource "aws_cloudtrail" "short" { name = "short" }

data "aws_caller_identity" "me" {}

data "aws_partition" "this" {}

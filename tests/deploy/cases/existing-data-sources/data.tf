# The module already reads partition and account, under labels of its own: ctfix must reuse
# them (a second data "aws_partition" block with the same label would not validate, and one
# with another label would be clutter).

data "aws_partition" "this" {}

data "aws_caller_identity" "me" {}

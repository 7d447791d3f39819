# Organisation trail.
resource "aws_cloudtrail" "org" { # trailing comment on the opening line
  # The trail's name.
  name = "org" // same-line comment

  /* a block comment
     spanning lines */
  s3_bucket_name = "org-audit" # last attribute, trailing comment
  # a comment after the last attribute

  event_selector {
    read_write_type           = "All"
    include_management_events = true
  }
  # comment before the closing brace
}

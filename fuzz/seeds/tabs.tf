resource "aws_cloudtrail" "tabs" {
	name = "tabs"
	s3_bucket_name = "logs"
}

module "org_trail" {
  source = "./modules/trail"
  name   = "ctfix-deploy-module-call"
  bucket = aws_s3_bucket.logs.id

  depends_on = [aws_s3_bucket_policy.logs]
}

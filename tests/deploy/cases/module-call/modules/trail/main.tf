variable "name" {
  description = "The trail's name."
  type        = string
}

variable "bucket" {
  description = "The bucket the trail delivers to."
  type        = string
}

variable "kms_key_id" {
  description = "The ARN of the key that encrypts the logs; none when null."
  type        = string
  default     = null
}

resource "aws_cloudtrail" "this" {
  name           = var.name
  s3_bucket_name = var.bucket
  kms_key_id     = var.kms_key_id
}

provider "aws" {
  region = "us-east-1"
}

provider "aws" {
  alias  = "audit"
  region = "eu-west-1"
}

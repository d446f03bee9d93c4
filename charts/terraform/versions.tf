terraform {
  required_version = ">= 1.5"
  required_providers {
    # 5 and 6: the module uses nothing that one of them lacks or deprecates (it reads the
    # region from the log group's ARN, not data.aws_region's `name`, deprecated in 6).
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

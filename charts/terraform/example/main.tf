# The module deploying charts/celery-scaler.yaml with the policy `celery-scaler iam-policy`
# printed for it (charts/iam-policy.json; a test keeps the two in step).
#
#   celery-scaler iam-policy --config celery-scaler.yaml --with alarms > iam-policy.json
#   terraform init && terraform apply

provider "aws" {
  region = "us-east-1"
}

variable "cluster_arn" {
  type = string
}

variable "subnet_ids" {
  type = list(string)
}

variable "security_group_ids" {
  type = list(string)
}

variable "broker_url_secret_arn" {
  type = string
}

module "celery_scaler" {
  source = "../"

  cluster_arn           = var.cluster_arn
  image                 = "ghcr.io/celery-scaler/celery-scaler:0.1.0"
  config_yaml           = file("${path.module}/../../celery-scaler.yaml")
  iam_policy_json       = file("${path.module}/../../iam-policy.json")
  broker_url_secret_arn = var.broker_url_secret_arn
  subnet_ids            = var.subnet_ids
  security_group_ids    = var.security_group_ids
  manage_alarms         = true # iam-policy.json was printed with --with alarms
}

output "task_role_arn" {
  value = module.celery_scaler.task_role_arn
}

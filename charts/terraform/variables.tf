variable "name" {
  description = "Name of the controller's ECS service, task family, roles and log group."
  type        = string
  default     = "celery-scaler"
}

variable "cluster_arn" {
  description = "The ECS cluster the controller runs in (usually the one of its workers)."
  type        = string
}

variable "image" {
  description = "The controller's image (this repository's Dockerfile), e.g. ghcr.io/celery-scaler/celery-scaler:0.1.0."
  type        = string
}

variable "config_yaml" {
  description = "The configuration file's text (multi-document YAML); the controller reads it from an environment variable (`--config env:NAME`)."
  type        = string
}

variable "iam_policy_json" {
  description = "The task role's policy: the output of `celery-scaler iam-policy --config <the same configuration>`."
  type        = string
}

variable "broker_url_secret_arn" {
  description = "A Secrets Manager secret (or SSM parameter) holding the broker URL, passed as CELERY_SCALER_BROKER_URL; null when the configuration's broker needs no secret (sqs://)."
  type        = string
  default     = null
}

variable "desired_count" {
  description = "Controller tasks. More than one needs leaderElection.enabled in the configuration (leases in DynamoDB)."
  type        = number
  default     = 1
  validation {
    condition     = var.desired_count >= 1
    error_message = "desired_count must be at least 1."
  }
}

variable "leader_election" {
  description = "Whether the configuration enables leader election: tasks may then overlap during a deployment, and the module creates the lease table (lease_table)."
  type        = bool
  default     = false
}

variable "lease_table" {
  description = "The DynamoDB lease table this module creates when leader_election is true: the configuration's leaderElection.table."
  type        = string
  default     = "celery-scaler-leases"
}

variable "subnet_ids" {
  description = "Subnets of the controller's tasks (awsvpc); they must reach the broker and the AWS APIs."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the controller's tasks."
  type        = list(string)
}

variable "assign_public_ip" {
  description = "Give the tasks a public IP (subnets without a NAT gateway or VPC endpoints)."
  type        = bool
  default     = false
}

variable "cpu" {
  description = "Fargate task CPU units."
  type        = number
  default     = 256
}

variable "memory" {
  description = "Fargate task memory (MiB)."
  type        = number
  default     = 512
}

variable "log_retention_days" {
  description = "Retention of the controller's log group."
  type        = number
  default     = 30
}

variable "manage_alarms" {
  description = "Run `celery-scaler alarms apply` in an init container before the controller starts, so each deployment reconciles the configuration's CloudWatch alarms and scale-out fallback. The task role then needs `celery-scaler iam-policy --with alarms`."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

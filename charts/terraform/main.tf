# The controller as an ECS service next to its workers: one Fargate task (or several with
# leader election), its task role holding exactly `celery-scaler iam-policy`, its logs.
# charts/ecs/task-definition.json is the same task definition for the AWS CLI.

data "aws_partition" "current" {}

locals {
  # The container of charts/ecs/task-definition.json (one source for both), with this
  # deployment's image, configuration, broker secret and log group.
  template = jsondecode(file("${path.module}/../ecs/task-definition.json"))
  base     = local.template.containerDefinitions[0]
  container = merge(local.base, {
    image = var.image
    environment = [
      for variable in local.base.environment :
      variable.name == "CELERY_SCALER_CONFIG_YAML" ? merge(variable, { value = var.config_yaml }) : variable
    ]
    secrets = [
      for arn in compact([var.broker_url_secret_arn]) :
      { name = "CELERY_SCALER_BROKER_URL", valueFrom = arn }
    ]
    logConfiguration = merge(local.base.logConfiguration, {
      options = merge(local.base.logConfiguration.options, {
        awslogs-group = aws_cloudwatch_log_group.controller.name
        # The log group's own region, from its ARN: the aws_region data source names it
        # `name` before AWS provider 6 and `region` from 6 on (`name` deprecated), and this
        # module works with both.
        awslogs-region = split(":", aws_cloudwatch_log_group.controller.arn)[3]
      })
    })
  })
  # `celery-scaler alarms apply` for the same configuration, run to completion first.
  alarms = {
    name                   = "alarms"
    image                  = var.image
    essential              = false
    command                = ["alarms", "apply", "--output", "json"] # one JSON line, no plan table
    environment            = local.container.environment
    secrets                = local.container.secrets
    user                   = local.base.user
    readonlyRootFilesystem = true
    linuxParameters        = { capabilities = { drop = ["ALL"] } }
    logConfiguration = merge(local.container.logConfiguration, {
      options = merge(local.container.logConfiguration.options, { awslogs-stream-prefix = "alarms" })
    })
  }
}

# Leader election's lease table (the configuration's leaderElection.table), kept in
# Terraform's state: the controller finds it (DescribeTable) and so never creates it. The
# table it would create itself is the same: key `name` (string), billed per request.
resource "aws_dynamodb_table" "leases" {
  count        = var.leader_election ? 1 : 0
  name         = var.lease_table
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "name"
  attribute {
    name = "name"
    type = "S"
  }
  tags = var.tags
}

resource "aws_cloudwatch_log_group" "controller" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

data "aws_iam_policy_document" "ecs_tasks" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# What the controller itself may call: only what its configuration uses.
resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "task" {
  name   = "celery-scaler"
  role   = aws_iam_role.task.id
  policy = var.iam_policy_json
}

# What ECS needs to start the task: pull the image, write logs, read the broker secret.
resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "broker_secret" {
  count = var.broker_url_secret_arn == null ? 0 : 1
  statement {
    actions   = [strcontains(var.broker_url_secret_arn, ":ssm:") ? "ssm:GetParameters" : "secretsmanager:GetSecretValue"]
    resources = [var.broker_url_secret_arn]
  }
}

resource "aws_iam_role_policy" "broker_secret" {
  count  = var.broker_url_secret_arn == null ? 0 : 1
  name   = "broker-url"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.broker_secret[0].json
}

resource "aws_ecs_task_definition" "controller" {
  family                   = var.name
  requires_compatibilities = local.template.requiresCompatibilities
  network_mode             = local.template.networkMode
  cpu                      = var.cpu
  memory                   = var.memory
  task_role_arn            = aws_iam_role.task.arn
  execution_role_arn       = aws_iam_role.execution.arn
  runtime_platform {
    operating_system_family = local.template.runtimePlatform.operatingSystemFamily
    cpu_architecture        = local.template.runtimePlatform.cpuArchitecture
  }
  # A writable /tmp under a read-only root file system.
  dynamic "volume" {
    for_each = local.template.volumes
    content {
      name = volume.value.name
    }
  }
  container_definitions = jsonencode(concat(
    var.manage_alarms ? [local.alarms] : [],
    [merge(local.container, { for key, value in { dependsOn = [{ containerName = "alarms", condition = "SUCCESS" }] } : key => value if var.manage_alarms })],
  ))
  tags = var.tags
}

resource "aws_ecs_service" "controller" {
  name                   = var.name
  cluster                = var.cluster_arn
  task_definition        = aws_ecs_task_definition.controller.arn
  desired_count          = var.desired_count
  launch_type            = "FARGATE"
  enable_execute_command = false
  propagate_tags         = "SERVICE"
  # Without leader election two controllers must never run at once: stop the old task
  # before the new one starts. With it, leases fence the overlap.
  deployment_minimum_healthy_percent = var.leader_election ? 100 : 0
  deployment_maximum_percent         = var.leader_election ? 200 : 100
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  # The table first: a controller that started before it would create it, and Terraform
  # would then fail to create a table that exists.
  depends_on = [aws_dynamodb_table.leases]
  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = var.assign_public_ip
  }
  lifecycle {
    precondition {
      condition     = var.desired_count == 1 || var.leader_election
      error_message = "More than one controller task needs leaderElection.enabled in the configuration and leader_election = true."
    }
    precondition {
      condition     = !var.manage_alarms || strcontains(var.iam_policy_json, "cloudwatch:PutMetricAlarm")
      error_message = "manage_alarms needs the policy of `celery-scaler iam-policy --with alarms`."
    }
    precondition {
      # The policy is printed for the configuration, so it names the configuration's table.
      condition     = !var.leader_election || strcontains(var.iam_policy_json, ":table/${var.lease_table}\"")
      error_message = "leader_election needs leaderElection.enabled in the configuration, with leaderElection.table = lease_table, and the policy `celery-scaler iam-policy` prints for it."
    }
  }
  tags = var.tags
}


output "service_name" {
  description = "The controller's ECS service."
  value       = aws_ecs_service.controller.name
}

output "task_definition_arn" {
  value = aws_ecs_task_definition.controller.arn
}

output "task_role_arn" {
  description = "The role holding `celery-scaler iam-policy`."
  value       = aws_iam_role.task.arn
}

output "log_group_name" {
  value = aws_cloudwatch_log_group.controller.name
}

output "lease_table_name" {
  description = "The lease table, when leader_election is true (else null)."
  value       = one(aws_dynamodb_table.leases[*].name)
}

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

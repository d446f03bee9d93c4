"""One adapter per external system the reconcile pass reads or writes.

Each implements a port of `core.ports` and hides one library: the broker's queues
(`broker`), Celery's remote control (`celery_inspect`), ECS (`ecs`), the DynamoDB lease
table (`leases`). `aws` holds the AWS SDK plumbing they share, `permissions` the IAM
declaration types each AWS adapter carries beside its calls, and `retries` the retries
where no SDK retries (the broker) and the bounded wait on a condition.
"""

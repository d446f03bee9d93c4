"""`alarms plan|apply|export`: the CloudWatch alarms and the scale-out-only fallback.

`desired` computes the wanted resources and their diff (pure), `aws` reads and writes
them, `sync` plans and applies, `formats` renders plans and Terraform/JSON exports.
"""

"""What the controller publishes about each pass: metric samples, CloudWatch, Prometheus, logs."""

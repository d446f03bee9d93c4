"""Before production: replay of CloudWatch history (`report`) and load simulation (`simulate`)."""

"""The reconcile pass (observe, decide, act) and the runner that repeats it."""

"""Everything that runs the controller on one machine: the demo, a local ECS fleet of real
Celery workers, and the local AWS API (moto's server mode). Used by the demo, the tests
and the benchmarks; the controller itself never imports it.
"""

"""The demo and test scaffolding: tiny random checkpoints, the synthetic scene, the sample bag.

No product path imports this room; set-up, the demo camera, benchmarks and tests do.
"""

"""Prefect flows over the catvec pipeline steps; deployments in prefect.yaml, served by flows/serve.py."""

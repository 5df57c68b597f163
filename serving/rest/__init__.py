"""The REST service (``propensity serve``): schemas, the batching thread, the service, the FastAPI app."""

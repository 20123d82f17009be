"""Prefect flows around the ecgml library: scheduled retraining and batch digitization (thin)."""

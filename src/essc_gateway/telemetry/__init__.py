"""Metrics export: the meter provider, Prometheus scraping and OTLP."""

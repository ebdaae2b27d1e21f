"""Webhook receivers: monitoring systems' alert payloads turned into one message each."""

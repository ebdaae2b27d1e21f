"""An example notifierd worker type, installed as a separate package: `example-webhook`."""

from notifierd_webhook.worker import WebhookParams, WebhookWorker

__all__ = ["WebhookParams", "WebhookWorker"]

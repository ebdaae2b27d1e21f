"""An example notifierd worker type, installed as a separate package: `webhook`."""

from notifierd_webhook.worker import WebhookParams, WebhookWorker

__all__ = ["WebhookParams", "WebhookWorker"]

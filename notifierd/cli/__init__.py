"""Command-line entry points: `notifierd` (the daemon) and `notifierctl` (its control)."""

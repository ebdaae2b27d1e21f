"""The control socket: a Unix socket in the parent that notifierctl talks to."""

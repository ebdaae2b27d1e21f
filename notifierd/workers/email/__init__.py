"""The `email` worker: a UTF-8 text/plain message to a set of addresses over SMTP.

Channel parameters (one delivery per address in `to`):

```yaml
params:
  host: smtp.example.org
  security: starttls          # starttls (587) | tls (implicit TLS, 465) | none (25, local relay)
  port: 587                   # optional: the default follows `security`
  username: notifier@example.org
  password: "${SMTP_PASSWORD}"
  sender: "Notifier <notifier@example.org>"
  to: [ops@example.org, oncall@example.org]
  subject: "[{channel}] {first_line}"
  timeout: 30                 # seconds, per network operation
  ca_file: /etc/ssl/private-ca.pem   # optional: trust this CA for the server's certificate
```

`subject` is a template with two placeholders: `{channel}` (the channel's name) and
`{first_line}` (the first non-blank line of the message, cut at 100 characters); write `{{` and
`}}` for literal braces. Non-ASCII subjects and names are RFC 2047-encoded.

The modules: `worker` (the worker class: one SMTP transaction per delivery on a kept
connection), `params`, `message` (the message built from a delivery), `session` (the SMTP
session, its login and the TLS probe) and `failures` (what a server's answers mean).
"""

from notifierd.workers.email.message import build_message, first_line, render_subject
from notifierd.workers.email.params import EmailParams
from notifierd.workers.email.worker import EmailWorker

__all__ = ["EmailParams", "EmailWorker", "build_message", "first_line", "render_subject"]

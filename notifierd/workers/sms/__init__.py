"""The `sms` worker: a short message to a set of phone numbers through an SMS gateway.

Channel parameters (one delivery per phone):

```yaml
params:
  provider: twilio            # twilio | smsru | http: see twilio, smsru, gateway
  account_sid: AC0123...
  api_key_sid: SK0123...      # an API key, as Twilio recommends (or `auth_token` instead)
  api_key_secret: "${TWILIO_API_KEY_SECRET}"
  sender: "+15005550006"
  phones: ["+79251234567", "+447700900123"]
  max_parts: 6                # the longest message allowed, in SMS parts (default 6)
  timeout: 10                 # seconds per request
```

A message is accepted when it fits in `max_parts` parts: GSM-7 texts take 160 characters in one
SMS or 153 per part, UCS-2 texts (anything outside GSM-7, e.g. Cyrillic or an emoji) 70 or 67
UTF-16 units per part, an emoji taking two. SMS.ru sends at most 8 parts, so `max_parts` is
capped there at 8; elsewhere at 10.

The modules: `worker` (the worker class), `params` (one model per provider), `parts` (how many
SMS a text takes), `base` (what every provider's params share) and one per provider: `twilio`,
`smsru` and `gateway` (any HTTP gateway described by templates).
"""

from notifierd.workers.sms.params import SmsParams
from notifierd.workers.sms.worker import SmsWorker

__all__ = ["SmsParams", "SmsWorker"]

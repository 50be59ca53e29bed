"""`--webhook URL`: each segment event's JSON (the same as on MQTT) POSTed, off the pipeline thread.

Imported only when asked for. A receiver that cannot be reached is retried with capped backoff
while events wait in the bounded outbox (oldest dropped and counted); one that answers with an
HTTP error has the event dropped and counted, since sending it again would get the same answer.
"""

from __future__ import annotations

import base64
import logging
import time
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit, urlunsplit

from stream.errors import BadInputError
from stream.outputs.outbox import OUTBOX_CAPACITY, Message, Sender
from stream.sources.open import mask_text, mask_url
from stream.version import __version__

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0
RETRY_MIN_S, RETRY_MAX_S = 0.5, 10.0


def check_webhook_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInputError(f"--webhook {mask_url(url)}: expected an http:// or https:// URL")


def _without_credentials(url: str) -> tuple[str, dict[str, str]]:
    """`https://user:pass@host/path` -> the URL without them and a Basic auth header (urllib
    would take `user:pass@host` for a host name)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, {}
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
    return urlunsplit(parts._replace(netloc=netloc)), {"Authorization": f"Basic {token}"}


class WebhookSender(Sender):
    kind = "webhook"

    def __init__(self, url: str, capacity: int = OUTBOX_CAPACITY) -> None:
        check_webhook_url(url)
        super().__init__(capacity)
        self.shown = mask_url(url)
        self.url, self.headers = _without_credentials(url)
        self.headers |= {"Content-Type": "application/json", "User-Agent": f"screentime/{__version__}"}
        self._retry_s = RETRY_MIN_S
        self._failing = False

    def put(self, message: Message) -> None:
        if message.event:
            super().put(message)

    def _deliver(self, message: Message) -> bool | None:
        request = urllib.request.Request(self.url, data=message.payload.encode(), headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                response.read()
        except urllib.error.HTTPError as exc:  # it answered: trying again would get the same answer
            log.warning("webhook %s answered %s: event dropped", self.shown, exc.code)
            return None
        except (OSError, ValueError) as exc:  # unreachable: wait and try again
            if not self._failing:
                why = mask_text(str(exc))
                log.warning("webhook %s unreachable (%s); retrying, the analysis goes on", self.shown, why)
                self._failing = True
            time.sleep(self._retry_s)
            self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)
            return False
        if self._failing:
            log.info("webhook %s is back", self.shown)
        self._failing, self._retry_s = False, RETRY_MIN_S
        return True

"""Inbound mail and webhooks: bounces, complaints and unsubscribe requests that come back after sending.

- ``classify``: one message → an ``InboundEvent`` (DSN, ARF, non-standard bounces, auto-replies). Pure;
  ``mime`` holds its MIME helpers.
- ``providers``: SES, Postmark, SendGrid and Mailgun notifications → events. Pure.
- ``verp``: the VERP return path that names each delivery (``papers+b-ID-TAG@…``).
- ``mailbox``: IMAP and POP3 readers behind one protocol.
- ``process``: the effects (through ``store/inbound.py``) and one pass over the mailbox.
- ``webhooks``: verification of each provider's requests (the routes are in ``web/webhooks.py``).
"""

from .classify import BOUNCES, KINDS, InboundEvent, classify
from .process import InboundProcessor, PassReport, run_pass
from .verp import Verp

__all__ = ["BOUNCES", "KINDS", "InboundEvent", "InboundProcessor", "PassReport", "Verp", "classify", "run_pass"]

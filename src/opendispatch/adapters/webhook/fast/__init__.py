"""The measured fast path for sidecars' output (OPENDISPATCH_FAST_INGEST=1; docs/performance.md).

Off by default: the default path is the plain Quart app on hypercorn (app.py), which serves
every endpoint. With it on, `serve_webhooks` puts this package's listener in front of that
app: the sidecar endpoints (report POSTs, `/webhooks/stream`) are served on trio + h11
(front.py), every stream's body is read by one task from one epoll set (stream_hub.py) and
decoded without h11 (body_framing.py), connections are accepted in batches, and requests
carry the kernel's arrival stamp (arrivals.py); anything else goes on to the plain app,
served by hypercorn on a loopback port of its own (listener.py). Linux only (epoll).
"""

from .front import SIDECAR_FRONT, SidecarFront
from .listener import serve_fast
from .stream_hub import AVAILABLE

__all__ = ["AVAILABLE", "SIDECAR_FRONT", "SidecarFront", "serve_fast"]

"""This server process's identity, used to own Generation rows while they run."""
from __future__ import annotations

import os
import socket
import uuid

OWNER_ID = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

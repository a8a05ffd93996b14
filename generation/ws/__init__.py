"""The WebSocket transport (`/ws/generations`): the native events as JSON messages."""

"""The OpenAI-compatible API under /v1 (docs/openai.md): the same lifecycle as the native
API (intake.open_run, GenerationRun, Generation rows with channel "openai"), with OpenAI's
request, response, stream and error shapes."""

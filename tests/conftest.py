"""Shared test set-up lives in project/test_settings.py (data dir, scripted backend).
Django imports stay inside fixtures so the pure-Python redaction tests need no Django."""

"""Deployment kit: nginx site, systemd unit, Procfile, and the local production stack."""

"""Jinja2 templates for the reports and the web UI (shipped as package data)."""

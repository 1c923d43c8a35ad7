"""Textual terminal UI. The only package that imports textual; the core never imports it."""

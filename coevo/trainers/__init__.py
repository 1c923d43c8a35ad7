"""Trainers: one TRL-based config/trainer pair per method; each produces a LoRA adapter as a new
policy version. Builders turn plain records (`records.py`) into datasets; TRL is imported only
when a trainer runs."""

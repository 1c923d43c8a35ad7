"""Trainers: one TRL-based config/trainer pair per method; each produces a LoRA adapter as a new policy version."""

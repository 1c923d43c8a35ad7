"""The domain: math problems, answer extraction and verification, procedural curricula, skill profiles."""

"""coevo: a multi-agent co-evolution simulator for language models.

Societies of Teacher, Solver, Generator, Coach and Student agents exchange messages over a
role graph, are recorded in a SQL memory, and are periodically trained with TRL.
"""

__version__ = "0.1.0"

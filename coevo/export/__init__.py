"""Export: a run's problems, attempts, refinements, rationales and coach reports as datasets that
TRL trains on unchanged (`coevo export`), each with a Hub dataset card.

A leaf over the memory's read API: it reads a run through `coevo.memory.store.Store` and builds the
training kinds' rows with the trainers' own builders (coevo.trainers.datasets), so an exported DPO
dataset is the very rows the Solver's trainer trains on. Nothing here writes to a run.
"""

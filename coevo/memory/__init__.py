"""SQL memory (SQLModel): every run, message, problem, attempt, skill profile and policy version; export."""

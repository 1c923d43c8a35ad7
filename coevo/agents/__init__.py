"""The five roles (Teacher, Solver, Generator, Coach, Student) as autogen-agentchat agents
on coevo engines."""

"""Open-Dispatch: run AI coding agents in ephemeral sprites from chat."""

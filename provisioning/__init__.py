"""The station: pipeline of steps, runner and ledger."""

"""The dev -> review -> fix orchestrator (DESIGN 5): config, issues, worktrees, runners, the loop."""

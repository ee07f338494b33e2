"""Read-only views computed from a session: attention, attribution, the Inside report,
comparing branches and finding forks. Each module imports torch only when it computes."""

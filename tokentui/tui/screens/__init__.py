"""Screens pushed over the main one: help, branch list, confirmations, force text."""

"""The Textual app: panes over one engine session, driven from the keyboard."""

"""Constraint sources shared by the engine and CLI constraint tests."""

PHONE = r"[0-9]{3}-[0-9]{4}"
ARITHMETIC = """start: expr
expr: term (("+" | "-") term){0,2}
term: factor ("*" factor){0,2}
factor: NUMBER | "(" expr ")"
NUMBER: /[1-9][0-9]{0,2}/
"""

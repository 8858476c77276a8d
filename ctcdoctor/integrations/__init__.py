"""Thin adapters between ctcdoctor and other tools (the pytest plugin, training frameworks).

Each module here may import its tool at module level; nothing else in ctcdoctor imports them
at module level, so `import ctcdoctor` never pays for a tool you do not use.
"""

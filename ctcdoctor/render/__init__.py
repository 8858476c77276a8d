"""Everything that turns a Report into text or a figure: console, json, CI formats, plots, phrases.

Importing this package imports nothing heavy; each renderer imports what it needs.
"""

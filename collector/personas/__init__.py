"""Personas as collector objects: built-in defaults, tenant definitions and assignment.

The built-in personas are :data:`scoring.personas.DEFAULT_PERSONAS` (code, not rows). A
tenant may store personas that override a built-in of the same name or extend one
(``base``), each with assignment rules. Devices get a persona at enrollment and again
whenever their tenant's personas change: manual override > first matching rule > the
agent's persona hint > the default persona. See docs/personas.md.
"""

__all__: list[str] = []

"""The pure core of Open-Dispatch: rules with no I/O, no trio and no clock reads.

Everything here takes time as a parameter and returns values, so it is tested directly.
Only the standard library and attrs may be imported in this package.
"""

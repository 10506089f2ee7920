"""An independent vendor system (a hospital's GtK node) for the Twiin TA Notified Pull exchange.

Written only from ../shared/SPEC.md and README.md, importing none of the project's code, so the test
environment can be tested against a system it did not write. See node.py for the endpoints.
"""

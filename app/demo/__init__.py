"""The demo alliance that ``make run`` loads (development and test only): a bank, an insurer and a corporate, a
back-office feed, one staff client per role, and a year of activity made through the services with the clock.

``catalog`` (the fixed rows), ``people`` (fake personal data), ``story`` (the year, written in advance),
``history`` and ``settling`` (the year played through the services), ``alliance`` (loading, once).
"""

from app.demo.alliance import DemoRefused, load_demo
from app.demo.catalog import CLIENTS, PARTNERS, PRODUCTS, DemoClient

__all__ = ["CLIENTS", "PARTNERS", "PRODUCTS", "DemoClient", "DemoRefused", "load_demo"]

"""Conversion reports for alliance managers, and each partner's own funnel."""

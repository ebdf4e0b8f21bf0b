"""Spark jobs of the purchase lakehouse: landing -> bronze -> silver -> gold -> training sets."""

"""The cache package's tests, and the pages the template adds (/health, the error pages): they pass
whatever the project does to views.py and its templates, so `cruft update` can keep them."""

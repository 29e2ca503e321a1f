"""Optional integrations with web frameworks (``pip install datalayer[fastapi]``)."""

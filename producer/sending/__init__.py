"""Sending a pool's calls: what may be called, the items checked and split into chunks, their
arrays stored beside them, and the Celery messages published in batches."""

"""The Celery pipeline: points -> render -> persist, one queue per stage.

Public entry points for the admin are in :mod:`pipeline.canvas` (build the
chain/group for a refresh) and :mod:`pipeline.status` (read the live status).
"""

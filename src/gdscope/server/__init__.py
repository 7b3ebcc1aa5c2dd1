"""The explorer: a FastAPI app (``app``), its request models built from the library's tables
(``models``) and the static page (``web/``)."""

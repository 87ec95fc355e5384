"""``ossframe serve``: the engine behind the OSS HTTP interface (optional ``server`` extra).

Modules: ``auth`` (V1/V4 signatures, presigned URLs), ``objects`` (buckets and objects with
their metadata, on the same directory layout as ``LocalStore``), ``tasks`` (the durable
asynchronous task queue and its worker processes), ``xml`` (OSS response bodies and errors),
``app`` (the Starlette routes) and ``cli`` (``ossframe serve`` / ``ossframe tasks``).
``import ossframe_native`` never imports this package. See docs/SERVICE.md.
"""

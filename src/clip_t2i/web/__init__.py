"""The web UI (``clip-t2i serve``): a Gradio app over the public API.

:mod:`~clip_t2i.web.jobs` holds everything that does not need Gradio (request validation with the CLI's checks,
the app's caps, job folders inside the output folder, the model cache, running a request); :mod:`~clip_t2i.web.app`
builds the Gradio page and the server around it. Gradio is an optional dependency (``pip install 'clip-t2i[web]'``)
and is imported only by :mod:`~clip_t2i.web.app`.
"""

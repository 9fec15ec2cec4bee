"""The QA lead's workbench (`callqa serve`): listen to a call beside its transcript, see why each criterion passed
or failed, correct verdicts, measure how far the automatic score agrees with people, tune lexicons.

    from pipeline.web.app import create_app
    app = create_app(load_settings())      # then: uvicorn.run(app, host="127.0.0.1", port=8080)

docs/workbench.md describes the pages, the roles and how to run it behind a proxy. This package's own import is
light (the settings read `WebSettings` from here); the application loads with `pipeline.web.app`.
"""

from pipeline.web.settings import WebSettings

__all__ = ["WebSettings"]

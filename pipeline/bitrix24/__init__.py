"""Bitrix24: the REST client (`client`, typed errors in `errors`), settings and OAuth (`settings`), the call
source (`source`) and the request encoding (`encoding`). The local test portal lives in `pipeline.sandbox`."""

"""callqa: speech analytics for Bitrix24 sales calls.

The top of the package is the flow of one call, in order:

    the audio half     audio -> asr -> speakers/ -> transcript      (`analyze.CallAnalyzer.transcribe`)
    the reading half   derive: roles -> turns -> metrics -> quality -> lexicon/ hits -> scoring/ score

with `schema` (the result JSON), `settings` and `errors` beside them, and what people add to a call: `reviews`
(their verdicts, which derive applies), `calibration` (how far the machine agrees with them), `audio_copy` (the
recording kept for playback) and `retention`. Around it: `batch/` (the nightly run on Dask), `sources/` and
`stores/` (where calls come from and artifacts go), `bitrix24/` (the CRM client), `publish/` (score comments),
`report/` (the supervisor's report), `web/` (the QA lead's workbench, `callqa serve`), `cli/` (the `callqa`
command), `sandbox/` (a local Bitrix24 portal for tests and the demo) and `support/` (files, logs, S3, YAML,
progress, Russian wording).
docs/ describes the contracts (command line, result JSON, lexicon format).
"""

__version__ = "0.1.0"

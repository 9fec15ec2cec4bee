"""callqa: speech analytics for Bitrix24 sales calls.

The stages (audio, asr, speakers, roles, turns, metrics, quality) are modules of this package; `analyze` chains
them for one call and `cli` is the `callqa` command. docs/ describes the contracts (command line, result JSON).
"""

__version__ = "0.1.0"

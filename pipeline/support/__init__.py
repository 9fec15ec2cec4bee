"""Plumbing every stage leans on: atomic files (`fileio`), logging without secrets (`logs`), the progress hook
(`progress`), S3 clients (`s3`), YAML with line numbers (`yamlfile`), the garbage collector set up for batch
work (`collector`), and the Russian wording readers see (`russian`)."""

"""Plumbing every stage leans on: atomic files (`fileio`), logging without secrets (`logs`), the progress hook
(`progress`), S3 clients (`s3`), YAML with line numbers (`yamlfile`), and the Russian wording readers see
(`russian`)."""

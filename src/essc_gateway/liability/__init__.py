"""Who is liable for each failed request (A16): the outage ledger, its classification, its
tamper-evident chain and the reports built from it."""

"""The store alone, as `make bench` measures it, without the rest of the bench:
`.venv/bin/python scripts/store_rate.py [postgresql|sqlite] [seconds] [writers]`."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from essc_gateway.bench.cluster_bench import fresh_database
from essc_gateway.bench.store_rate import measure_store_rate


async def main(kind: str, seconds: float, writers: int) -> None:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            print((await measure_store_rate(Path(directory), seconds, writers)).to_json())
        return
    async with fresh_database() as database:
        print((await measure_store_rate(database, seconds, writers)).to_json())


if __name__ == "__main__":
    arguments = sys.argv[1:]
    asyncio.run(
        main(
            arguments[0] if arguments else "postgresql",
            float(arguments[1]) if len(arguments) > 1 else 3.0,
            int(arguments[2]) if len(arguments) > 2 else 256,
        )
    )

"""Reading and writing the jobs' prefixes: `s3://` URIs on the harness's S3 server, or paths."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any


class Storage:
    """`s3://bucket/key` URIs through `client` (a boto3 S3 client), anything else as a path."""

    def __init__(self, client: Any | None) -> None:
        self.client = client

    @staticmethod
    def _split(uri: str) -> tuple[str, str]:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return bucket, key

    def put(self, source: Path, uri: str) -> None:
        if uri.startswith("s3://"):
            bucket, key = self._split(uri)
            self.client.upload_file(str(source), bucket, key)
        else:
            destination = Path(uri.removeprefix("file://"))
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(source.read_bytes())

    def make_bucket(self, name: str) -> None:
        self.client.create_bucket(Bucket=name)

    def read(self, uri: str) -> bytes:
        if uri.startswith("s3://"):
            bucket, key = self._split(uri)
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return Path(uri.removeprefix("file://")).read_bytes()

    def objects(self, prefix: str) -> dict[str, int]:
        """`{name relative to prefix: size}` of everything under `prefix` (ending in `/`)."""
        if prefix.startswith("s3://"):
            bucket, key = self._split(prefix)
            found: dict[str, int] = {}
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=key
            ):
                for item in page.get("Contents", []):
                    found[item["Key"][len(key) :]] = item["Size"]
            return found
        root = Path(prefix.removeprefix("file://"))
        if not root.is_dir():
            return {}
        return {
            str(path.relative_to(root)): path.stat().st_size
            for path in root.rglob("*")
            if path.is_file()
        }

    def vcf_records(self, uri: str) -> list[str]:
        """The data lines of a bgzipped VCF (not the header, which names commands and dates)."""
        text = gzip.decompress(self.read(uri)).decode()
        return [line for line in text.splitlines() if line and not line.startswith("#")]

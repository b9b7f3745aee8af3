"""Playback from S3 object storage (a real SeaweedFS): segment URLs answer with a 302 to a
short-lived presigned URL on the store, which serves the same bytes (and Range requests);
a tampered URL is refused before any presigning, and a presigned URL does not outlive its
signed segment URL by more than the 5 minutes a playlist grants."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from controller.storage import open_store
from tests.fixtures.seaweedfs import SeaweedFS
from tests.integration.test_api_support import T0, ApiWorld, assert_refused, segment_urls


@pytest.fixture
def api(tmp_path: Path, seaweedfs: SeaweedFS) -> Iterator[ApiWorld]:
    url = (
        f"s3://{seaweedfs.new_bucket_name()}?endpoint={seaweedfs.endpoint_url}"
        f"&access_key={seaweedfs.access_key}&secret_key={seaweedfs.secret_key}"
    )
    world = ApiWorld(tmp_path, store=open_store(url))
    world.world.add_footage("cam-01", T0, 3)
    yield world
    world.close()


def test_segments_redirect_to_presigned_s3_urls(api: ApiWorld, seaweedfs: SeaweedFS) -> None:
    urls = segment_urls(api.playlist(api.mint()["token"]).text)
    assert len(urls) == 3
    for url in urls:
        r = api.client.get(url)
        assert r.status_code == 302, r.text
        location = r.headers["location"]
        assert location.startswith(seaweedfs.endpoint_url)
        assert seaweedfs.secret_key not in location  # a signature, never the secret
        expires = int(parse_qs(urlsplit(location).query)["X-Amz-Expires"][0])
        assert 1 <= expires <= 300
        row = api.world.catalog.get_segment(url.split("?")[0][len("/play/seg/") : -3])
        assert row is not None
        body = httpx.get(location, timeout=30)
        assert body.status_code == 200
        assert body.content == api.world.store.read_bytes(row.object_key)
        part = httpx.get(location, headers={"Range": "bytes=5-14"}, timeout=30)
        assert part.status_code == 206 and part.content == body.content[5:15]
    # A tampered segment URL gets no redirect at all.
    before = len(api.entries())
    bad = urls[0][:-2] + ("AA" if not urls[0].endswith("AA") else "BB")
    r = api.client.get(bad)
    assert_refused(api, r, 401, "url_tampered", before, action="segment_fetch")
    assert "location" not in r.headers

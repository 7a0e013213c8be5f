#!/usr/bin/python3
"""Regenerate botocore_vectors.json: requests signed by botocore's SigV4 signer.

Run from this directory:  /usr/bin/python3 gen_botocore.py > botocore_vectors.json

The Go tests in ../verify_test.go verify every vector with the kvsd verifier.
botocore comes from python3-botocore, or from Debian's awscli v2 package, which
vendors it as awscli.botocore and aliases it to "botocore" once awscli is
imported. The signing clock is pinned by replacing the datetime module that
botocore.auth sees, the way botocore's own unit tests pin it.
"""

import base64
import datetime
import hashlib
import json
import sys
import types
from unittest import mock

try:
    import botocore  # noqa: F401
except ImportError:
    import awscli  # noqa: F401  (installs the botocore import alias)
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS_KEY_ID = "AKIDBOTOCOREKVSD"
SECRET_ACCESS_KEY = "botocore/Secret+Key/kvsd0123456789EXAMPLE"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEKVSD//botocore+session/token=="
REGION = "us-east-1"
SERVICE = "kinesisvideo"
NOW = datetime.datetime(2025, 11, 21, 10, 10, 10)


class FixedDatetime(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return cls(NOW.year, NOW.month, NOW.day, NOW.hour, NOW.minute, NOW.second)


def sign(name, method, url, headers=None, body=b"", token=False, presign_expires=None,
         unsigned_payload=False, streamed=False):
    """Sign one request and return it as a JSON-able vector."""
    creds = Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN if token else None)
    if presign_expires is None:
        signer = botocore.auth.SigV4Auth(creds, SERVICE, REGION)
    else:
        signer = botocore.auth.SigV4QueryAuth(creds, SERVICE, REGION, expires=presign_expires)
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    if unsigned_payload:
        # What botocore does over https for operations with payload signing off.
        req.context["payload_signing_enabled"] = False
    with mock.patch.object(botocore.auth, "datetime", types.SimpleNamespace(datetime=FixedDatetime)):
        signer.add_auth(req)
    # botocore signs the host it derives from the URL; the HTTP client sends it.
    out_headers = [["Host", botocore.auth._host_from_url(req.url)]]
    out_headers += [[k, v] for k, v in req.headers.items()]
    return {
        "name": name,
        "method": method,
        "url": req.url,
        "headers": out_headers,
        "body_base64": base64.b64encode(body).decode("ascii"),
        # streamed: the server does not buffer the body and passes bodyHash "".
        "streamed": streamed,
        # payload_unsigned: the signature does not cover the body.
        "payload_unsigned": unsigned_payload,
        "session_token": token,
    }


def main():
    json_headers = {"Content-Type": "application/json", "User-Agent": "Boto3/1.29 botocore/1.29 kvsd-test"}
    tag_body = b'{"StreamName": "cam-1", "Tags": {"k": "v"}}'
    vectors = [
        sign("describeStream", "POST", "http://127.0.0.1:8080/describeStream",
             json_headers, b'{"StreamName": "cam-1"}'),
        sign("getDataEndpoint with session token", "POST", "http://localhost:8080/getDataEndpoint",
             json_headers, b'{"StreamName": "cam-1", "APIName": "GET_MEDIA"}', token=True),
        sign("listStreams with Date header instead of X-Amz-Date", "POST", "http://127.0.0.1:8080/listStreams",
             dict(json_headers, Date="placeholder, replaced by botocore"), b"{}"),
        sign("explicit hex x-amz-content-sha256", "POST", "http://127.0.0.1:8080/tagStream",
             dict(json_headers, **{"X-Amz-Content-SHA256": hashlib.sha256(tag_body).hexdigest()}),
             tag_body),
        sign("putMedia UNSIGNED-PAYLOAD over https", "POST", "https://kvs.example.test/putMedia",
             {"x-amzn-stream-name": "cam-1", "x-amzn-fragment-timecode-type": "ABSOLUTE",
              "x-amzn-producer-start-timestamp": "1795263160.70"},
             bytes(range(0x1A, 0x1A + 40)), unsigned_payload=True, streamed=True),
        sign("path with space and percent, repeated query keys", "GET",
             "http://127.0.0.1:8080/stream%20one/a%25b?b=2&a=1&a=0&sp=x%20y&u=%E1%88%B4&empty="),
        sign("dot segments in path", "POST", "http://127.0.0.1:8080/x/./y/../describeStream",
             json_headers, b'{"StreamName": "cam-2"}'),
        sign("presigned getMedia", "GET", "http://127.0.0.1:8080/getMedia?StreamName=cam-1",
             presign_expires=300),
        sign("presigned with session token", "GET", "http://127.0.0.1:8080/getHLSStreamingSessionURL",
             token=True, presign_expires=600),
    ]
    doc = {
        "generator": "gen_botocore.py (botocore.auth.SigV4Auth / SigV4QueryAuth)",
        "botocore_version": botocore.__version__,
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
        "session_token": SESSION_TOKEN,
        "region": REGION,
        "service": SERVICE,
        "now": NOW.strftime("%Y%m%dT%H%M%SZ"),
        "vectors": vectors,
    }
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

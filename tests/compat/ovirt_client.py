# SPDX-License-Identifier: GPL-3.0-or-later
"""Drive oVirt's own client library (ovirt_imageio.client), unchanged,
against an imageio-compatible server.  Used by tests/compat/ovirt-imageio.sh;
ovirt_imageio must be importable (PYTHONPATH).

  ovirt_client.py download URL OUT FMT CAFILE
  ovirt_client.py upload FILE URL CAFILE
  ovirt_client.py checksum URL FILE CAFILE   remote block hash == client's
  ovirt_client.py extents URL FILE CAFILE    remote zero map == client's
"""

import json
import ssl
import sys
import http.client
from urllib.parse import urlparse

from ovirt_imageio import client


def remote_checksum(url, cafile):
    u = urlparse(url)
    ctx = ssl.create_default_context(cafile=cafile)
    con = http.client.HTTPSConnection(u.netloc, context=ctx)
    con.request("GET", u.path + "/checksum")
    res = con.getresponse()
    body = res.read()
    if res.status != 200:
        raise SystemExit(f"GET checksum: {res.status} {body!r}")
    return json.loads(body)


def zero_map(extents):
    """Coalesce to (start, length, zero) runs, so two servers' different
    cuts of the same map compare equal."""
    runs = []
    for e in extents:
        if runs and runs[-1][2] == e.zero and \
                runs[-1][0] + runs[-1][1] == e.start:
            runs[-1][1] += e.length
        else:
            runs.append([e.start, e.length, e.zero])
    return runs


def main():
    op = sys.argv[1]
    if op == "download":
        url, out, fmt, cafile = sys.argv[2:6]
        client.download(url, out, cafile, fmt=fmt)
    elif op == "upload":
        path, url, cafile = sys.argv[2:5]
        client.upload(path, url, cafile)
    elif op == "checksum":
        url, path, cafile = sys.argv[2:5]
        remote = remote_checksum(url, cafile)
        local = client.checksum(path)
        print(json.dumps({"remote": remote, "local": local}))
        if remote != local:
            raise SystemExit("checksum differs")
    elif op == "extents":
        url, path, cafile = sys.argv[2:5]
        with client.ImageioClient(url, cafile=cafile) as c:
            size = c.size()
            remote = zero_map(c.extents("zero"))
        local = zero_map(client.extents(path))
        print(json.dumps({"size": size, "remote": remote, "local": local}))
        if remote[-1][0] + remote[-1][1] != size:
            raise SystemExit("remote extents do not tile the image")
        if remote != local:
            raise SystemExit("zero maps differ")
    else:
        raise SystemExit(f"unknown op {op}")


if __name__ == "__main__":
    main()

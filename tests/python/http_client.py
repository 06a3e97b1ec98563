#!/usr/bin/env python3
"""A dashboard's view of carecountd, written from docs/protocol.md
("HTTP/JSON") alone, with Python's http.client: POSTs one op with a JSON
body and a bearer token on one persistent connection, and prints the JSON
reply; a second request on the same connection checks keep-alive.

    http_client.py --port PORT --token-file FILE OP REQUEST.json FIELD
      (FIELD: the op field the file's JSON goes into: "query" for count,
       "comparison" for compare)

Exit status: 0 for a 200, 1 for an error reply (its code on stderr).
"""
import argparse
import http.client
import json
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("op")
    parser.add_argument("request")
    parser.add_argument("field")
    args = parser.parse_args()
    with open(args.token_file) as f:
        token = f.read().strip()
    with open(args.request) as f:
        value = json.load(f)
    body = json.dumps({args.field: value})
    connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
    connection.request("POST", "/v1/" + args.op, body=body,
                       headers={"Authorization": "Bearer " + token,
                                "Content-Type": "application/json"})
    response = connection.getresponse()
    reply = json.loads(response.read())
    if response.getheader("Content-Type", "").split(";")[0] != "application/json":
        print("not JSON", file=sys.stderr)
        return 1
    # the same connection serves a second request
    connection.request("GET", "/v1/ping")
    ping = connection.getresponse()
    if ping.status != 200 or not json.loads(ping.read()).get("ok"):
        print("the connection did not stay usable", file=sys.stderr)
        return 1
    connection.close()
    if response.status != 200:
        print("HTTP %d %s" % (response.status, reply["error"]["code"]), file=sys.stderr)
        return 1
    json.dump(reply, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Checks the Python client's answers against docs/protocol.md and the
default disclosure policy: every released value is 0 or at least the
threshold and a multiple of the rounding base; suppressed cells are nil;
comparison rows with a suppressed count have no value; England comes last.

    check_answers.py COUNT.json COMPARE.json
"""
import json
import sys


def fail(message):
    print("check_answers: " + message, file=sys.stderr)
    sys.exit(1)


def check_count(reply):
    release = reply["release"]
    policy = release["policy"]
    threshold, base = policy["threshold"], policy["rounding_base"]
    cells = release["cells"]
    size = 1
    for dimension in release["dimensions"]:
        size *= len(dimension["labels"])
    if len(cells) != size or size == 0:
        fail("cells do not match the dimensions")
    released = 0
    for value, reason in cells:
        if value is None:
            if reason not in ("suppressed", "suppressed_secondary"):
                fail("a nil cell with reason %r" % reason)
            continue
        if 0 < value < threshold or value % base:
            fail("released value %d breaks the policy" % value)
        released += value > 0
    if released == 0:
        fail("nothing was released")


def check_compare(reply):
    rows = reply["comparison"]["rows"]
    if rows[-1]["code"] != "E92000001":
        fail("England is not the last row")
    compared = 0
    for row in rows:
        if row["status"] == "suppressed":
            if row["value"] is not None:
                fail("a suppressed row has a value")
            continue
        if row["count"] % 5 or row["denominator"] % 5:
            fail("a comparison count is not a released count")
        if row["status"] == "ok":
            expected = 100.0 * row["count"] / row["denominator"]
            if abs(row["value"] - expected) > 1e-9:
                fail("a value is not derived from the released counts")
            compared += 1
    if compared == 0:
        fail("no row was compared")


with open(sys.argv[1]) as f:
    check_count(json.load(f))
with open(sys.argv[2]) as f:
    check_compare(json.load(f))
print("check_answers: ok")

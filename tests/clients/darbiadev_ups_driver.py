#!/usr/bin/env python3
"""Drive darbiadev-ups 0.6.5 (PyPI, 2022-10) through a base URL: legacy JSON
(POST /rest/Track with a "UPSSecurity" member), parsed by the library's
`parse_tracking_response` into {shipment_references, packages: {number: {status, references}}}.

    darbiadev_ups_driver.py BASE_URL ACCESS_KEY USER_ID PASSWORD SHIPPER_NUMBER

Track only: the library has no rate or ship call (its other calls are address validation
and time in transit). The number tracked is the simulator's usual first number,
1Z<SHIPPER_NUMBER>0300000001 (the simulator answers any number). Public API only.

Prints one JSON line with what the library parsed; exit 0 on success, 1 with the library's
error (and the raw answer) on stderr otherwise.

No runtime shim. Base URL: the constructor's public `base_url` argument (the README uses
"https://onlinetools.ups.com/"); the driver passes BASE_URL with a trailing slash.
"""
import json
import sys

import requests

from darbiadev_ups import UPSServices


def main():
    base, key, user, password, shipper = sys.argv[1:6]
    tn = f"1Z{shipper}0300000001"
    client = UPSServices(
        base_url=base.rstrip("/") + "/",
        username=user,
        password=password,
        access_license_number=key,
    )
    raw = {}
    orig = requests.Session.request

    def keep(self, method, url, **kw):  # records the answer for the error report only
        r = orig(self, method, url, **kw)
        raw["answer"] = r.text
        return r

    requests.Session.request = keep
    try:
        parsed = client.track(tn)
        if "packages" not in parsed:
            raise RuntimeError(f"library returned {parsed}")
        pkg = parsed["packages"].get(tn)
        out = {
            "library": "darbiadev-ups 0.6.5",
            "track_number": tn,
            "track_packages": sorted(parsed["packages"]),
            "track_status": pkg["status"] if pkg else None,
            "track_references": pkg["references"] if pkg else None,
            "shipment_references": parsed["shipment_references"],
        }
    except Exception as e:
        print(f"darbiadev-ups track failed: {type(e).__name__}: {e}", file=sys.stderr)
        if "answer" in raw:
            print(f"answer: {raw['answer'][:4000]}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
